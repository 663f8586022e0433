"""Stage 5: the Plan, a data object wrapping the corrected diff (statements, hazards, fingerprints).

Like alembic's operations/ops.py: the diff becomes data first; planfile.py renders it to text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from ..inspection.snapshot import NOT_COMPARED, CatalogSnapshot
from ..version import __version__

# The hazards and the diff's operations are imported where a plan is built, not where one is read.
if TYPE_CHECKING:  # annotations only
    from ..diff.operations import Facts, SchemaDiff


@dataclasses.dataclass(frozen=True, slots=True)  # slots: a first plan holds tens of thousands
class PlannedStatement:
    """An operation of the diff, with what the plan knows of it against the live target."""

    sql: str
    summary: str
    origin: str  # "migra", a correction's name, or "file" for a statement read back from a plan file
    facts: Facts = dataclasses.field(repr=False, compare=False)  # read once, when the operation was made
    destructive: str | None = None  # why it can lose data
    commit_after: bool = False  # see diff.operations.Operation
    rows_of: str | None = None  # the table whose rows are at stake
    rows: int | None = None  # how many rows it held when the plan was made
    hazards: tuple[str, ...] = ()  # what it does to a live table (hazards.py), none for tables new in this plan
    lint: tuple[str, ...] = ()  # squawk's findings (lint.py)
    online_step: bool = False  # runs on its own, outside the plan's transactions (online.py, runner.plan_units)
    batch_rows: int = 0  # > 0: an online step run in batches of this many rows (runner.run_in_batches)
    commit_reason: str = ""  # why the plan commits after it, when commit_after (shown in the plan file)
    # Read back from a plan file (planfile.read): the file and the line of it its SQL begins on, so that a
    # failure is named by the file's line (runner.PlanStatementFailed); None for a statement just planned.
    source_file: Path | None = dataclasses.field(default=None, compare=False)
    source_line: int | None = dataclasses.field(default=None, compare=False)

    @property
    def data_step(self) -> bool:
        """Hand-written (plan --data-before/--data-after): apply runs it once, and records that it did."""
        return self.origin.startswith("data")

    @property
    def lock(self) -> str | None:
        """The strongest lock it takes on a live table, by its hazards (None: none that blocks)."""
        from .hazards import lock_level

        return lock_level(self.hazards)


@dataclasses.dataclass(frozen=True)
class Plan:
    statements: tuple[PlannedStatement, ...]
    as_of: dt.date
    fingerprint_before: str
    fingerprint_after: str
    created_at: dt.datetime
    tool_version: str = __version__
    corrections_used: tuple[str, ...] = ()
    not_compared: tuple[str, ...] = NOT_COMPARED
    destructive_approved: bool = False
    rollback_note: str = "none"  # where the rehearsed reverse plan is, or why there is none
    preflight: tuple = ()  # preflight.Outcome of each check counted on the target's rows (none failed)

    @property
    def empty(self) -> bool:
        return not self.statements

    @property
    def destructive(self) -> tuple[PlannedStatement, ...]:
        return tuple(s for s in self.statements if s.destructive)

    @property
    def transactional(self) -> tuple[PlannedStatement, ...]:
        return tuple(s for s in self.statements if not s.online_step)

    @property
    def online_steps(self) -> tuple[tuple[int, PlannedStatement], ...]:
        """(statement number, statement) of the steps that run after the transaction."""
        return tuple((n, s) for n, s in enumerate(self.statements, 1) if s.online_step)

    @property
    def tables_at_stake(self) -> set[str]:
        return {s.rows_of for s in self.statements if s.rows_of}

    def with_lint(self, findings) -> "Plan":
        """Attach lint findings (each with a 1-based statement index) to their statements."""
        by_statement: dict[int, list[str]] = {}
        for finding in findings:
            by_statement.setdefault(finding.statement, []).append(finding.describe())
        return dataclasses.replace(self, statements=tuple(
            dataclasses.replace(s, lint=tuple(by_statement.get(number, ()))) if number in by_statement or s.lint else s
            for number, s in enumerate(self.statements, 1)
        ))

    def with_row_counts(self, counts: dict) -> "Plan":
        """Say how many rows each dropped, rewritten or detached table holds."""
        statements = []
        for s in self.statements:
            rows = counts.get(s.rows_of)
            if rows is None:
                statements.append(s)
                continue
            note = f" ({rows} row{'s' if rows != 1 else ''})"
            statements.append(dataclasses.replace(
                s, rows=rows, summary=s.summary + note,
                destructive=s.destructive + note if s.destructive else None,
            ))
        return dataclasses.replace(self, statements=tuple(statements))

    def to_dict(self) -> dict:
        return {
            "tool_version": self.tool_version,
            "created_at": self.created_at.isoformat(),
            "as_of": self.as_of.isoformat(),
            "fingerprint_before": self.fingerprint_before,
            "fingerprint_after": self.fingerprint_after,
            "corrections": list(self.corrections_used),
            "not_compared": list(self.not_compared),
            "destructive_approved": self.destructive_approved,
            "preflight": [outcome.to_dict() for outcome in self.preflight],
            "statements": [
                {"sql": s.sql, "summary": s.summary, "origin": s.origin, "destructive": s.destructive,
                 "commit_after": s.commit_after, "rows": s.rows, "hazards": list(s.hazards),
                 "lint": list(s.lint), "online_step": s.online_step, "batch_rows": s.batch_rows, "lock": s.lock}
                for s in self.statements
            ],
        }


def live_hazards(operations, current: CatalogSnapshot | None) -> list[tuple[str, ...]]:
    """Each operation's hazards, leaving out those on tables an earlier statement of the plan created:
    a new table is empty and unused, so locking or rewriting it harms nobody."""
    from .hazards import NOT_IN_TRANSACTION, hazards_of, target_table

    created: set[str] = set()
    out = []
    for operation in operations:
        found = hazards_of(operation.facts, current)
        if target_table(operation.facts) in created:
            found = tuple(h for h in found if h == NOT_IN_TRANSACTION)
        out.append(found)
        created |= operation.facts.creates
    return out


# A plan that creates (or drops) the whole schema commits every this many statements: as one
# transaction, a few thousand tables take more locks than PostgreSQL's default lock table holds
# (max_locks_per_transaction 64 per connection), and it fails with "out of shared memory".
WHOLE_SCHEMA_PART = 200
NEEDS_COMMITTED = "what follows needs the statement above committed"


def _in_parts(statements: list[PlannedStatement], current: CatalogSnapshot, desired: CatalogSnapshot) -> list:
    """Commit points for a plan from (or to) a schema without tables: nothing in it is live yet
    (or any longer), so committing in parts exposes no half-made table to users, and a failure
    leaves whole parts that the next plan simply does not repeat."""
    whole_schema = not current.of_kind("table") or not desired.of_kind("table")
    if not whole_schema or len(statements) <= WHOLE_SCHEMA_PART or any(s.origin.startswith("data") for s in statements):
        return statements
    reason = (f"a plan that builds or removes the whole schema commits every {WHOLE_SCHEMA_PART} statements, "
              f"to stay within the server's lock table")
    out = []
    for number, statement in enumerate(statements, 1):
        if number % WHOLE_SCHEMA_PART == 0 and number < len(statements) and not statement.commit_after:
            statement = dataclasses.replace(statement, commit_after=True, commit_reason=reason)
        out.append(statement)
    return out


def build_plan(diff: SchemaDiff, current: CatalogSnapshot, desired: CatalogSnapshot, as_of: dt.date) -> Plan:
    """The plan of `diff`'s operations: what each does (summary, data at risk, hazards), judged from its
    facts against `current` (no statement is parsed again), and where the plan commits."""
    from .hazards import classify

    statements = []
    hazards = live_hazards(diff.statements, current)
    for statement, its_hazards in zip(diff.statements, hazards, strict=True):
        commit_reason = NEEDS_COMMITTED if statement.commit_after else ""
        classification = classify(statement.sql, statement.facts, current)
        statements.append(PlannedStatement(statement.sql, classification.summary, statement.origin, statement.facts,
                                           classification.destructive, statement.commit_after,
                                           classification.rows_of, hazards=its_hazards,
                                           online_step=statement.online_step, batch_rows=statement.batch_rows,
                                           commit_reason=commit_reason))
    return Plan(
        statements=tuple(_in_parts(statements, current, desired)),
        as_of=as_of,
        fingerprint_before=current.fingerprint,
        fingerprint_after=desired.fingerprint,
        created_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
        corrections_used=diff.corrections_used,
    )


def replan(written: Plan, current: CatalogSnapshot, desired: CatalogSnapshot) -> Plan:
    """A plan read back from its file (edited by hand, say), classified anew against `current`: its
    statements, commit points, online steps and data steps as written."""
    from ..diff.operations import Operation, SchemaDiff

    statements = tuple(Operation(s.sql, s.origin, s.facts, s.commit_after, s.online_step, s.batch_rows)
                       for s in written.statements)
    plan = build_plan(SchemaDiff(statements, written.corrections_used), current, desired, written.as_of)
    return dataclasses.replace(plan, statements=tuple(
        dataclasses.replace(new, commit_reason=old.commit_reason or new.commit_reason)
        for old, new in zip(written.statements, plan.statements, strict=True)
    ))
