"""Stage 4 (diff): the relations a diff between two catalog snapshots needs to read, when their
differences are all about relations, and the diff made on just those. A plan and its reverse are
diffed so: at 10,000 tables, a plan that adds one table otherwise holds two whole views (some 120 MB
each) to find that one table's CREATE, and its reverse two more for its DROP. The rehearsal still
judges each on the whole database, and a plan made so that does not reach the declared state is made
again from the whole diff (api.plan).

What migra needs to see beside a changed relation, read from its own source (changes.py,
get_selectable_differences): a changed or removed selectable's `dependents_all` are rebuilt only when
they are in both views, so every view reading a kept relation, directly or not, is kept; and a
partitioned table is kept with its partitions and its parents, whose columns and keys it shares.
Anything else that differs (a function, a type, an enum, a schema, an extension, a standalone
sequence) can change how relations that do not differ are rebuilt: then there is no scope, and the
diff reads everything.
"""

from __future__ import annotations

from ..inspection.migra_view import InspectedDatabase
from ..inspection.snapshot import CatalogSnapshot
from ..process_memory import give_back_freed
from .migra_diff import diff
from .operations import DiffContext, SchemaDiff

RELATION_KINDS = ("table", "view", "materialized view", "foreign table")
# What belongs to a relation, by the snapshot's kinds (catalog_queries.py). A grant or a comment
# belongs to a relation only when its owners name one (see relations_to_diff).
BELONGING_KINDS = (*RELATION_KINDS, "column", "constraint", "index", "policy", "trigger", "grant", "comment")


def relations(snapshot: CatalogSnapshot) -> set[str]:
    """Every relation ("schema.name") of a snapshot that a scope may leave out."""
    return {key for kind, key in snapshot.objects if kind in RELATION_KINDS}


def relations_to_diff(before: CatalogSnapshot, after: CatalogSnapshot,
                      differences: list | None = None) -> frozenset[str] | None:
    """The relations a diff from `before` to `after` needs, or None when it needs everything (something
    not of a relation differs). Nothing differs: an empty set. `differences`: before.differences(after),
    when the caller has them (at 10,000 tables a walk over some 300,000 objects)."""
    known = relations(before) | relations(after)
    changed: set[str] = set()
    for difference in before.differences(after) if differences is None else differences:
        if difference.kind not in BELONGING_KINDS:
            return None
        owners = before.belongs_to(difference, after)
        if not any(owner in known for owner in owners):
            return None  # a grant or comment on a function, a schema...
        changed.update(owner for owner in owners if owner in known)
    return frozenset(_closed(changed, before, after))


def diff_on(kept: frozenset[str], current: InspectedDatabase, desired: InspectedDatabase,
            context: DiffContext = DiffContext()) -> SchemaDiff:
    """migra_diff.diff of `current` to `desired` with only the `kept` relations in either view (and
    what is not a relation). Each view is cut down right after it is thawed, and what it let go is
    freed before the other is thawed: only one whole view is alive at a time."""
    left_out = (relations(current.snapshot) | relations(desired.snapshot)) - kept
    # A view read without some relations (inspect_database's leaving_out) serves when none of them is
    # kept here (what it lacks beyond left_out is in neither snapshot, and is cut as well); else (the
    # reverse of a plan whose relations are not the plan's, say) it is read again whole.
    if current.partial is not None and not current.partial.isdisjoint(kept):
        current = current.whole()
    if desired.partial is not None and not desired.partial.isdisjoint(kept):
        desired = desired.whole()
    left_out |= (current.partial or frozenset()) | (desired.partial or frozenset())
    if not left_out:  # a plan from empty, say: cutting down would only copy the views once more
        return diff(current, desired, context)
    desired = desired.without(left_out)  # first: as in diff, a view's first copy freezes it (see copy)
    give_back_freed()
    current = current.without(left_out)
    give_back_freed()
    return diff(current, desired, context, current_used_once=True)


def _closed(changed: set[str], before: CatalogSnapshot, after: CatalogSnapshot) -> set[str]:
    """`changed` with the views reading any of them (and the views reading those...), and each
    partition's parents and each partitioned table's partitions, on either side."""
    related: dict[str, set[str]] = {}
    for snapshot in (before, after):
        for view, read in snapshot.fact("reads").items():
            for relation in read or ():
                related.setdefault(relation, set()).add(view)  # a view rebuilt when what it reads changes
        for partition, parent in snapshot.fact("partition parent").items():
            related.setdefault(parent, set()).add(partition)
            related.setdefault(partition, set()).add(parent)
    kept, pending = set(changed), list(changed)
    while pending:
        for other in related.get(pending.pop(), ()):
            if other not in kept:
                kept.add(other)
                pending.append(other)
    return kept
