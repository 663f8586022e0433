"""Stage 4 (diff): the statement a diff produces, and what a diff is told about the declared state.

A leaf module: the diff, its corrections and the plan all read these types.
"""

from __future__ import annotations

import dataclasses


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


@dataclasses.dataclass(frozen=True)
class DiffContext:
    """What the declared files say beyond the schema that a correction needs: the partition specs
    (expiring a partition detaches or drops it, as its spec says)."""

    partition_specs: tuple = ()
