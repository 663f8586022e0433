"""Stage 4: diff (migra + corrections). Takes two inspected databases, returns the statements between them."""

from __future__ import annotations

import dataclasses

from .corrections import Correction, all_corrections
from .inspection import InspectedDatabase


@dataclasses.dataclass(frozen=True)
class DiffStatement:
    sql: str
    origin: str  # "migra" or the name of the correction that wrote it
    # Commit right after this statement: what follows needs it committed (a new enum value
    # cannot be used in the transaction that adds it).
    commit_after: bool = False


@dataclasses.dataclass(frozen=True)
class SchemaDiff:
    statements: tuple[DiffStatement, ...]
    corrections_used: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.statements


def diff(current: InspectedDatabase, desired: InspectedDatabase, corrections: list[Correction] | None = None,
         *, current_used_once: bool = False) -> SchemaDiff:
    """Statements that take `current` to `desired`. The inputs are left as they were: corrections
    adjust copies of their schemainspect views, so an inspection can be diffed again; except with
    current_used_once, when `current` is adjusted in place (the caller drops it; copying thousands of
    objects costs a fraction of a second per thousand tables)."""
    from migra import Migration

    corrections = all_corrections() if corrections is None else corrections
    current, desired = (current if current_used_once else current.copy()), desired.copy()
    used = [c.name for c in corrections if c.before_migra(current, desired)]
    migration = Migration(current.inspected, desired.inspected)
    # Unsafe statements are not refused here: the plan classifies and gates them instead.
    migration.set_safety(False)
    # Grants are compared by the privileges.grants correction (migra sees table grants only).
    migration.add_all_changes(privileges=False)
    statements = [DiffStatement(s.strip(), "migra") for s in migration.statements if s.strip()]
    for correction in corrections:
        rewritten = correction.rewrite(statements, current, desired)
        if rewritten != statements:
            used.append(correction.name)
            statements = rewritten
    sql_so_far = [s.sql for s in statements]
    for correction in corrections:
        extra = correction.after_migra(sql_so_far, current, desired)
        if extra:
            used.append(correction.name)
            statements += [DiffStatement(sql, correction.name) for sql in extra]
            sql_so_far += extra
    return SchemaDiff(tuple(statements), tuple(used))

