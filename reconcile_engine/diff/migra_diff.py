"""Stage 4: diff (migra + corrections). Takes two inspected databases, returns the statements between them."""

from __future__ import annotations

from ..inspection.migra_view import InspectedDatabase
from . import conversion
from .corrections import all_corrections
from .operations import DiffContext, SchemaDiff
from .statement_facts import operation


def diff(current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext = DiffContext(), *,
         corrections=None, current_used_once: bool = False) -> SchemaDiff:
    """Statements that take `current` to `desired`. The inputs are left as they were: corrections
    adjust copies of their schemainspect views, so an inspection can be diffed again; except with
    current_used_once, when `current` is adjusted in place (the caller drops it; copying thousands of
    objects costs a fraction of a second per thousand tables)."""
    for side in (current, desired):
        if side.partial:  # what its view lacks, the diff would drop (or never create)
            raise ValueError(f"a whole diff of a view read without {len(side.partial)} relation(s): "
                             f"diff it on the relations it was read for (diff/scope.diff_on), or read it whole")
    conversions = conversion.find_conversions(current, desired)
    if conversions:
        return _with_conversions(conversions, current, desired, context, corrections)
    from migra import Migration  # heavy: imported when a diff is made

    corrections = all_corrections() if corrections is None else corrections
    # The declared side first: copying a view read but never copied freezes it, and the pickler's memo
    # (at 10,000 tables some 50 MB) is let go before the other side's view is thawed beside it.
    desired = desired.copy()
    current = current if current_used_once else current.copy()
    used, leading = [], []
    for correction in corrections:
        adjusted = correction.before_migra(current, desired, context)
        if adjusted:
            used.append(correction.name)
        if isinstance(adjusted, list):
            leading += adjusted
    migration = Migration(current.inspected, desired.inspected)
    # Unsafe statements are not refused here: the plan classifies and gates them instead.
    migration.set_safety(False)
    # Grants are compared by the privileges.grants correction (migra sees table grants only).
    migration.add_all_changes(privileges=False)
    # The boundary: each of migra's statements is read once, here, into an operation.
    statements = leading + [operation(s.strip(), "migra") for s in migration.statements if s.strip()]
    del migration  # its statements' text and its comparison of the two views are not read again
    for correction in corrections:
        rewritten = correction.rewrite(statements, current, desired, context)
        if rewritten != statements:
            used.append(correction.name)
            statements = rewritten
    for correction in corrections:
        extra = correction.after_migra(statements, current, desired, context)
        if extra:
            used.append(correction.name)
            statements = statements + [operation(sql, correction.name) for sql in extra]
    return SchemaDiff(tuple(statements), tuple(used))



def _with_conversions(conversions, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext,
                      corrections) -> SchemaDiff:
    """Tables converted between plain and partitioned (conversion.py): migra diffs everything else;
    each converted table is built from what a diff from nothing gives for it, and swapped in last."""
    moved = set().union(*(c.moved for c in conversions))
    referencing = set().union(*(c.referencing for c in conversions))
    body = diff(current.without(moved, referencing), desired.without(moved, referencing), context,
                corrections=corrections)
    statements, used = list(body.statements), list(body.corrections_used)
    for number, found in enumerate(conversions, 1):
        creation = diff(desired.without(found.moved, set(found.referencing), keep_sequences=True), desired, context,
                        corrections=corrections)
        statements += conversion.conversion_operations(found, current, desired, list(creation.statements),
                                                       context.batch_rows, last=number == len(conversions))
        used += creation.corrections_used
    used = tuple(dict.fromkeys(used + [conversion.NAME]))
    return SchemaDiff(tuple(statements), used)
