"""Stage 3 (inspect): an independent, normalized view of a database's managed schemas, from the catalogs.

migra cannot see what it ignores (FORCE ROW LEVEL SECURITY, comments, ...), so convergence checks
and fingerprints use this instead. It is plain catalog queries, so it also runs on the applying
connection inside the apply transaction, where pg_dump could not see the uncommitted change.
"""

from __future__ import annotations

import dataclasses
import hashlib

from ..connections import connected
from .catalog_queries import queries_for


# What this view does not look at, and so what neither plans nor drift reports can be trusted on.
NOT_COMPARED = (
    "column order within a table",
    "renames (a renamed object is seen as one dropped and one created)",
    "grants (unless privileges: true in reconcile.yaml)",
    "ownership",
    "table data and sequence current values",
)


def not_compared(scope: "Scope") -> tuple[str, ...]:
    return tuple(item for item in NOT_COMPARED if not (scope.privileges and item.startswith("grants")))


@dataclasses.dataclass(frozen=True)
class Scope:
    """What is inspected: the managed schemas, and whether grants are managed (and so compared)."""

    schemas: tuple[str, ...]
    privileges: bool = False


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

    def fact(self, name: str) -> dict:
        return self.facts.get(name, {})

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for (kind, key), definition in sorted(self.objects.items()):
            digest.update(f"{kind}\t{key}\t{definition}\n".encode())
        return "sha256:" + digest.hexdigest()

    def of_kind(self, kind: str) -> dict:
        return {key: value for (k, key), value in self.objects.items() if k == kind}

    def differences(self, other: "CatalogSnapshot") -> list[Difference]:
        keys = sorted(set(self.objects) | set(other.objects))
        return [
            Difference(kind, key, self.objects.get((kind, key)), other.objects.get((kind, key)))
            for kind, key in keys
            if self.objects.get((kind, key)) != other.objects.get((kind, key))
        ]


def take_snapshot(conn, scope: Scope) -> CatalogSnapshot:
    objects: dict = {}
    facts: dict = {}
    with conn.cursor() as cur:
        # pg_get_viewdef, pg_get_constraintdef and friends qualify names by the session's search_path:
        # pin it, so the same schema always reads the same, then give the session its own back.
        cur.execute("SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', false)")
        saved_search_path = cur.fetchone()[0]
        try:
            _read_catalog(cur, queries_for(scope.privileges), scope.schemas, objects, facts)
        finally:
            cur.execute("SELECT set_config('search_path', %s, false)", (saved_search_path,))
    return CatalogSnapshot(objects, facts)


def _read_catalog(cur, queries, schemas, objects: dict, facts: dict) -> None:
    for query in queries:
        cur.execute(query, {"schemas": list(schemas)})
        for kind, key, definition in cur.fetchall():
            if key is None:
                continue
            if kind.startswith("fact:"):
                facts.setdefault(kind[len("fact:"):], {})[key] = definition
            else:
                objects[(kind, key)] = definition or ""


def read_snapshot(url: str, scope: Scope, connect_timeout_s: int = 10) -> CatalogSnapshot:
    """Only our own snapshot (no schemainspect): what a check against a cached desired state needs."""
    with connected(url, connect_timeout_s) as conn:
        return take_snapshot(conn, scope)
