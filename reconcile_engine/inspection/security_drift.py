"""Stage 3 (inspect), for drift: which differences between the target and the declared state weaken
tenant isolation. Those come first in a drift report, marked severity "security", so that a cron job
can page on them alone:

- a table's row level security disabled, or no longer forced, on the target while declared so;
- any difference in a policy (dropped, added or changed: a permissive policy added by hand widens
  what a tenant sees as surely as a dropped one);
- a view's security_invoker turned off on the target while declared on, over such a table;
- any difference in a grant (compared only with privileges: true) on a table with row level
  security (on either side), on a partition of one, or on a view or materialized view that reads
  one, directly or through other views: a materialized view applies no row level security, and a
  view without security_invoker reads as its owner.

Plain data in, plain data out: the two snapshots' objects, facts and owners; no connection.
"""

from __future__ import annotations

import dataclasses

from .snapshot import CatalogSnapshot, Difference

SECURITY = "security"
SCHEMA = "schema"


@dataclasses.dataclass(frozen=True)
class DriftDifference:
    """One difference between the target and the declared state, as a drift report shows it."""

    description: str
    kind: str  # the snapshot's kind: table, column, policy, grant, ...
    key: str
    severity: str  # SECURITY or SCHEMA


def classify(differences: list[Difference], target: CatalogSnapshot,
             declared: CatalogSnapshot) -> tuple[DriftDifference, ...]:
    """The differences (target first, declared second, as CatalogSnapshot.differences gives them),
    described and classified: security ones first, each group in its given order."""
    protected = _under_row_security(target, declared)
    classified = []
    for difference in differences:
        reason = _weakens_isolation(difference, target, declared, protected)
        described = difference.describe()
        classified.append(DriftDifference(f"{reason}: {described}" if reason else described, difference.kind,
                                          difference.key, SECURITY if reason else SCHEMA))
    return tuple(sorted(classified, key=lambda d: d.severity != SECURITY))  # sorted() is stable


def _under_row_security(target: CatalogSnapshot, declared: CatalogSnapshot) -> dict[str, str]:
    """Tables with row level security on either side (each mapped to itself), and the views and
    materialized views reading them, through other views too (each mapped to a table it reads)."""
    protected = {table: table for table in (*target.fact("row security"), *declared.fact("row security"))}
    reads: dict[str, set] = {}
    for snapshot in (target, declared):
        for view, relations in snapshot.fact("reads").items():
            reads.setdefault(view, set()).update(relations or ())
    while True:
        more = {view: protected[read] for view, relations in reads.items() if view not in protected
                for read in sorted(relations) if read in protected}
        if not more:
            return protected
        protected |= more


def _weakens_isolation(difference: Difference, target: CatalogSnapshot, declared: CatalogSnapshot,
                       protected: dict[str, str]) -> str | None:
    """Why the difference weakens tenant isolation, naming the table or view; None when it does not."""
    kind, key = difference.kind, difference.key
    if kind == "view" and key in protected and _invoker(difference.after) and not _invoker(difference.before):
        return f"security_invoker turned off on {key}, which reads {protected[key]}, a table with row level security"
    if kind == "table" and difference.before is not None and difference.after is not None:
        if key in declared.fact("row security") and key not in target.fact("row security"):
            return f"row level security disabled on {key}"
        if key in declared.fact("forced rls") and key not in target.fact("forced rls"):
            return f"row level security no longer forced on {key}"
        return None
    owners = target.belongs_to(difference, declared)
    if kind == "policy":
        on = f" on {owners[0]}" if owners else ""
        if difference.before is None:
            return f"policy dropped{on} (declared, missing on the target)"
        if difference.after is None:
            return f"policy added{on} on the target (not declared)"
        return f"policy changed{on}"
    if kind == "grant" and owners:
        relkind = target.fact("relkind").get(owners[0]) or declared.fact("relkind").get(owners[0])
        if relkind == "S":
            return None  # a sequence's grant reads no rows
        table = next((protected[name] for name in _with_parents(owners[0], target, declared) if name in protected),
                     None)
        if table == owners[0]:
            return f"grant changed on {table}, a table with row level security"
        if table is not None:
            return f"grant changed on {owners[0]}, over {table}, a table with row level security"
    return None


def _invoker(definition: str | None) -> bool:
    """Whether a view's definition (the snapshot's) has security_invoker on: it then reads as its caller,
    under the caller's policies; without it, as its owner, past them."""
    for part in (definition or "").split(" | "):
        if part.startswith("options "):
            return any(option in ("security_invoker=true", "security_invoker=on", "security_invoker=1")
                       for option in part[len("options "):].split(","))
    return False


def _with_parents(relation: str, target: CatalogSnapshot, declared: CatalogSnapshot) -> list[str]:
    """The relation, and if it is a partition its parent, the parent's parent, ... (from either side)."""
    parent_of = declared.fact("partition parent") | target.fact("partition parent")
    chain = [relation]
    while (relation := parent_of.get(relation)) is not None and relation not in chain:
        chain.append(relation)
    return chain
