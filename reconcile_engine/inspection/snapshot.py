"""Stage 3 (inspect): an independent, normalized view of a database's managed schemas, from the catalogs.

migra cannot see what it ignores (FORCE ROW LEVEL SECURITY, comments, ...), so convergence checks
and fingerprints use this instead. It is plain catalog queries, so it also runs on the applying
connection inside the apply transaction, where pg_dump could not see the uncommitted change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import hashlib
from sys import intern

from ..connections import connected
from .catalog_queries import queries_for


# What this view does not look at, and so what neither plans nor drift reports can be trusted on.
NOT_COMPARED = (
    "column order within a table",
    "renames not declared with '-- reconcile: renamed from' (seen as one object dropped and one created)",
    "grants (unless privileges: true in reconcile.yaml)",
    "ownership",
    "table data and sequence current values",
    "on PostgreSQL 18, the names of a partition's NOT NULL constraints (they follow how the table became "
    "a partition, and PostgreSQL does not rename an inherited one)",
)


def not_compared(scope: "Scope") -> tuple[str, ...]:
    items = tuple(item for item in NOT_COMPARED if not (scope.privileges and item.startswith("grants")))
    if scope.ignore:  # never silent: every plan header and drift report names what it leaves out
        items += (f"objects matching ignore: {', '.join(scope.ignore)} (with everything that belongs to them: "
                  f"columns, constraints, indexes, triggers, policies, comments, grants, owned sequences, "
                  f"partitions), on both sides",)
    return items


@dataclasses.dataclass(frozen=True)
class Scope:
    """What is inspected: the managed schemas, whether grants are managed (and so compared), and the
    globs of objects in them that are never compared (config ignore:)."""

    schemas: tuple[str, ...]
    privileges: bool = False
    ignore: tuple[str, ...] = ()

    def ignores(self, names) -> bool:
        """Whether an ignore glob matches any of `names` ("schema.name", as the database spells them:
        fnmatch, case-sensitive; a name is never parsed, so dots and quotes in it are plain text)."""
        return any(fnmatch.fnmatchcase(name, glob) for name in names for glob in self.ignore)


@dataclasses.dataclass(frozen=True)
class Difference:
    kind: str
    key: str
    before: str | None  # None: not in the first snapshot
    after: str | None  # None: not in the second snapshot

    def describe(self, before_name: str = "target", after_name: str = "declared") -> str:
        if self.before is None:
            return f"{self.kind} {self.key}: only in {after_name}"
        if self.after is None:
            return f"{self.kind} {self.key}: only in {before_name}"
        return f"{self.kind} {self.key}: differs ({before_name}: {self.before!s:.200} / {after_name}: {self.after!s:.200})"


@dataclasses.dataclass(frozen=True)
class CatalogSnapshot:
    """(kind, key) -> normalized definition, for every object in the managed schemas."""

    objects: dict
    facts: dict = dataclasses.field(default_factory=dict)  # fact name -> {key: value}
    # (kind, key) -> the names ("schema.name") the object is or directly belongs to: itself, or its
    # table; an index's table and a sequence's owning table too (catalog_queries.py). A partition's
    # parents are in fact("partition parent"). Read from the catalog, never cached: a snapshot from
    # the desired-state cache has none, and is only used when it has no difference to explain.
    # Held only where they are not just the key itself (a relation, its facts): see owners_of.
    owners: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)
    # "schema.name" of every relation (table, view, sequence, index, ...) an ignore glob left out, its
    # own name matched or one it belongs to (an owned sequence's table, a partition's parent): migra's
    # view leaves out the same (migra_view.py), so the two never disagree. Not cached either.
    ignored_relations: frozenset = dataclasses.field(default=frozenset(), compare=False, repr=False)

    def fact(self, name: str) -> dict:
        return self.facts.get(name, {})

    def owners_of(self, item: tuple[str, str]) -> tuple[str, ...]:
        """The names (kind, key) is or belongs to (see owners); none when this snapshot has no such item."""
        names = self.owners.get(item)
        if names is not None:
            return names
        kind, key = item
        held = key in self.fact(kind[len("fact:"):]) if kind.startswith("fact:") else item in self.objects
        return (key,) if held else ()

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.objects)

    def of_kind(self, kind: str) -> dict:
        return {key: value for (k, key), value in self.objects.items() if k == kind}

    def belongs_to(self, difference: Difference, other: "CatalogSnapshot") -> tuple[str, ...]:
        """The names a difference between this snapshot and `other` directly belongs to, from either side:
        first the object itself (or, for a column, constraint, trigger, policy, the table), then the rest."""
        item = (difference.kind, difference.key)
        names = self.owners_of(item) + other.owners_of(item)
        return tuple(dict.fromkeys(names))

    def without(self, relations: set[str], constraints: set[str] = frozenset(), *,
                keep_sequences: bool = False) -> "CatalogSnapshot":
        """This snapshot without what belongs to `relations` ("schema.name": tables, partitions, views,
        by the owners each row was read with) and without the `constraints` ("schema.table.name");
        keep_sequences: sequences owned by those tables stay."""
        def kept(kind: str, key: str) -> bool:
            if kind == "sequence" and keep_sequences:
                return True
            if kind == "constraint" and key in constraints:
                return False
            return relations.isdisjoint(self.owners_of((kind, key)))

        return dataclasses.replace(
            self, objects={item: value for item, value in self.objects.items() if kept(*item)},
            facts={name: {key: value for key, value in values.items() if kept(f"fact:{name}", key)}
                   for name, values in self.facts.items()})

    def differences(self, other: "CatalogSnapshot") -> list[Difference]:
        # Only the differing keys are gathered and sorted, not the union of all of them.
        mine, theirs = self.objects, other.objects
        differing = [item for item, definition in mine.items() if theirs.get(item) != definition]
        differing += [item for item, definition in theirs.items() if item not in mine and definition is not None]
        return [Difference(kind, key, mine.get((kind, key)), theirs.get((kind, key))) for kind, key in sorted(differing)]


def take_snapshot(conn, scope: Scope, like: CatalogSnapshot | None = None) -> CatalogSnapshot:
    """`like`: a snapshot of a database mostly the same (a plan's target, beside its declared state),
    whose keys and owners' tuples this one shares where they are equal: a plan holds both through its
    diff, and at 10,000 tables their (kind, key) and owners' tuples are some 50 MB, mostly twins."""
    with conn.cursor() as cur, _catalog_search_path(cur):
        rows = _read_catalog(cur, queries_for(scope.privileges), scope.schemas, like)
        if not scope.ignore:
            return _snapshot_of(rows, like=like)  # each row kept as it is read: the rows are never all held
        rows = list(rows)
    return _snapshot_of(rows, _Ignoring(scope, rows), like)


def fingerprint_of(conn, scope: Scope) -> str:
    """take_snapshot(conn, scope).fingerprint, holding only what it is made of (each object's kind, key
    and definition), not the owners and facts a snapshot also holds. A template layer's fingerprint is
    read so while the declared state goes on loading and is then inspected beside it: at 10,000 tables
    a whole snapshot read there was some 80 MB at the moment a plan's memory peaked."""
    if scope.ignore:  # what an ignore glob leaves out is known only once every row is read
        return take_snapshot(conn, scope).fingerprint
    objects: dict = {}
    with conn.cursor() as cur, _catalog_search_path(cur):
        for kind, key, definition, _ in _read_catalog(cur, queries_for(scope.privileges), scope.schemas):
            if not kind.startswith("fact:"):  # as _snapshot_of: a key read twice keeps its last row
                objects[(kind, key)] = definition or ""
    return _fingerprint(objects)


def _fingerprint(objects: dict) -> str:
    digest = hashlib.sha256()
    for (kind, key), definition in sorted(objects.items()):
        digest.update(f"{kind}\t{key}\t{definition}\n".encode())
    return "sha256:" + digest.hexdigest()


def differences_in(conn, scope: Scope, expected: CatalogSnapshot) -> list[Difference]:
    """take_snapshot(conn, scope).differences(expected), without holding that snapshot where there are
    none: each row is looked up in `expected` as it is read. A rehearsal checks two databases so while
    a diff holds two views beside it; at 10,000 tables a snapshot is some 50 MB. That every expected
    object was read, once, is checked by count and by a sum of hashes. Any doubt (a row that differs
    or is not expected, an object not read, a key read twice: names with dots can make one) is settled
    by a whole snapshot, so the answer is always the snapshot's; it costs a second read only where the
    database is not what was expected."""
    if not scope.ignore:  # what an ignore glob leaves out is known only once every row is read
        wanted = expected.objects
        read = summed = 0
        with conn.cursor() as cur, _catalog_search_path(cur):
            for kind, key, definition, _ in _read_catalog(cur, queries_for(scope.privileges), scope.schemas):
                if kind.startswith("fact:"):  # structure the plan reads, never compared (differences)
                    continue
                item = (kind, key)
                if wanted.get(item) != (definition or ""):
                    break
                read += 1
                summed = (summed + hash(item)) & _HASH_SUM_MASK
            else:
                if read == len(wanted) and summed == sum(map(hash, wanted)) & _HASH_SUM_MASK:
                    return []
    return take_snapshot(conn, scope).differences(expected)


_HASH_SUM_MASK = 2**64 - 1


@contextlib.contextmanager
def _catalog_search_path(cur):
    """pg_get_viewdef, pg_get_constraintdef and friends qualify names by the session's search_path:
    pinned, so the same schema always reads the same; then the session has its own back."""
    cur.execute("SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', false)")
    saved_search_path = cur.fetchone()[0]
    try:
        yield
    finally:
        cur.execute("SELECT set_config('search_path', %s, false)", (saved_search_path,))


def _snapshot_of(rows, ignoring: "_Ignoring | None" = None, like: CatalogSnapshot | None = None) -> CatalogSnapshot:
    objects: dict = {}
    facts: dict = {}
    owners: dict = {}
    ignored: set = set()
    same_items = {item: item for item in like.objects} if like is not None else {}
    for kind, key, definition, names in rows:
        if ignoring is not None and ignoring.leaves_out(names):
            if kind in RELATION_KINDS:
                ignored.add(names[0])  # the relation itself (catalog_queries.py)
            continue
        item = (kind, key)
        item = same_items.get(item, item)
        if names != (key,):
            owners[item] = names
        if kind.startswith("fact:"):
            facts.setdefault(kind[len("fact:"):], {})[key] = definition
        else:
            objects[item] = definition or ""
    return CatalogSnapshot(objects, facts, owners, frozenset(ignored))


# The kinds of rows that are one pg_class relation each, named by their key (catalog_queries.py).
RELATION_KINDS = frozenset({"table", "view", "materialized view", "sequence", "foreign table", "composite type",
                            "index"})


def _read_catalog(cur, queries, schemas, like: CatalogSnapshot | None = None):
    """Every row, each string interned as it is read: a plan holds several snapshots (and a drift two)
    of tens of thousands of rows naming the same tables, and most definitions repeat ("bigint not
    null"), so each distinct string is held once across all of them (sys.intern lets go of a string
    no one holds any more). The owners' tuples repeat too (a table's name on each of its columns)."""
    same_names: dict = {names: names for names in like.owners.values()} if like is not None else {}
    for query in queries:
        cur.execute(query, {"schemas": list(schemas)})
        for kind, key, definition, names in cur:
            if key is not None:
                names = tuple(map(intern, names or ()))
                yield intern(kind), intern(key), _interned(definition), same_names.setdefault(names, names)


def _interned(value):
    return intern(value) if type(value) is str else value


class _Ignoring:
    """Which rows an ignore glob leaves out. Every row is read before any is kept: what a relation
    belongs to (an index's table, the table owning a sequence, a partition's parents) is known from
    the relation and index rows, and carried over to every row that names the relation (its comment,
    its grant, its facts), so all of it goes with the relation."""

    def __init__(self, scope: Scope, rows: list[tuple]):
        self.scope = scope
        self.parent_of = {key: parent for kind, key, parent, _ in rows if kind == "fact:partition parent"}
        self.belongs = {key: self.with_ancestors(names) for kind, key, _, names in rows if kind in RELATION_KINDS}

    def leaves_out(self, names) -> bool:
        return self.scope.ignores([name for direct in names for name in self.belongs.get(direct) or
                                   self.with_ancestors((direct,))])

    def with_ancestors(self, names) -> list[str]:
        """`names` and, for each partition among them, its parent, the parent's parent and so on."""
        found = list(names)
        for name in names:
            while (name := self.parent_of.get(name)) is not None and name not in found:
                found.append(name)
        return found


def read_snapshot(url: str, scope: Scope, connect_timeout_s: int = 10, like: CatalogSnapshot | None = None) -> CatalogSnapshot:
    """Only our own snapshot (no schemainspect): what a check against a cached desired state needs.
    `like`: see take_snapshot."""
    with connected(url, connect_timeout_s) as conn:
        return take_snapshot(conn, scope, like)
