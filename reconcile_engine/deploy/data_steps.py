"""Stage 8 (deploy): a data step runs once. Apply records each data step it runs (its plan file, its
statement number, a sha256 of its SQL, when, in which apply) in the same transaction as the step, so a
record exists exactly when the step's effect was committed. When a plan is applied again (after a
rollback, which reverses its DDL but not its data steps), the steps recorded with the same plan,
number and SQL are skipped, unless the caller asks to run them again."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import psycopg2
import psycopg2.errors

from ..config import TOOL_SCHEMA
from ..connections import first_line
from ..errors import DatabaseError
from .own_tables import on_own_tables

TABLE = f"{TOOL_SCHEMA}.data_steps"

# Made by history.ensure_table with the history table (same schema, same privileges needed). A row per
# run, never updated but for history_id: --rerun-data-steps adds a row, the latest one counts.
CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_file   text NOT NULL,
    statement   integer NOT NULL,
    sql_sha256  text NOT NULL,
    ran_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The history row of the apply that ran it, set when that apply is recorded (in the same
    -- transaction, unless the plan commits in parts and failed after this step's part: then NULL).
    history_id  bigint
);
CREATE INDEX IF NOT EXISTS data_steps_plan_statement ON {TABLE} (plan_file, statement);
"""


@dataclasses.dataclass(frozen=True)
class DataStepRun:
    """A data step recorded as run on the target."""

    statement: int  # its number in the plan
    sql_sha256: str
    ran_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class SkippedDataStep:
    """A data step apply did not run, because it ran before (recorded with the same SQL)."""

    plan: str
    statement: int
    summary: str
    ran_at: dt.datetime

    def to_dict(self) -> dict:
        return {"plan": self.plan, "statement": self.statement, "summary": self.summary,
                "ran_at": self.ran_at.isoformat()}

    def describe(self) -> str:
        return f"data step {self.statement} of {self.plan} already ran on {_when(self.ran_at)}: skipped; " \
               f"--rerun-data-steps runs it again"


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}"


def sql_sha256(statement) -> str:
    """The step's SQL as the plan file holds it (the form its seal checks)."""
    from ..planning.planfile import canonical_sql

    return hashlib.sha256(canonical_sql(statement.sql).encode()).hexdigest()


def _readable(cur) -> bool:
    """The table exists (a target last applied to by an older reconcile has none, and reading must not
    create it) and this role may read it (status by a read-only role granted only the history)."""
    cur.execute("SELECT CASE WHEN to_regclass(%s) IS NULL THEN false "
                "ELSE has_table_privilege(to_regclass(%s), 'SELECT') END", (TABLE, TABLE))
    return cur.fetchone()[0]


@on_own_tables
def last_runs(cur, plan_file: str) -> dict[int, DataStepRun]:
    """The latest recorded run of each of the plan's data steps, by statement number."""
    if not _readable(cur):
        return {}
    cur.execute(f"SELECT DISTINCT ON (statement) statement, sql_sha256, ran_at FROM {TABLE} "
                f"WHERE plan_file = %s ORDER BY statement, id DESC", (plan_file,))
    return {row[0]: DataStepRun(*row) for row in cur.fetchall()}


@dataclasses.dataclass(frozen=True)
class Decision:
    """What apply does with each of a plan's data steps that ran before."""

    plan: str
    skipped: tuple[SkippedDataStep, ...] = ()
    changed: tuple[tuple[int, DataStepRun], ...] = ()  # (number, its earlier run, with other SQL): it runs
    rerun: tuple[tuple[int, DataStepRun], ...] = ()  # (number, its earlier run): runs again, as asked

    @property
    def skip(self) -> frozenset[int]:
        return frozenset(s.statement for s in self.skipped)

    def progress(self) -> list[str]:
        return [s.describe() for s in self.skipped] + [
            f"data step {number} of {self.plan}: its SQL is not the one that ran on {_when(run.ran_at)} (the plan "
            f"was edited and rehearsed since): it runs" for number, run in self.changed] + [
            f"data step {number} of {self.plan} already ran on {_when(run.ran_at)}: runs again (--rerun-data-steps)"
            for number, run in self.rerun]


def decide(plan_name: str, statements, runs: dict[int, DataStepRun], *, rerun: bool) -> Decision:
    """Skip a data step recorded as run with the same SQL, unless `rerun`. One whose SQL changed since
    (the plan was edited and rehearsed again after its rollback) is another step: it runs."""
    skipped, changed, again = [], [], []
    for number, statement in enumerate(statements, 1):
        run = runs.get(number)
        if not statement.data_step or run is None:
            continue
        if run.sql_sha256 != sql_sha256(statement):
            changed.append((number, run))
        elif rerun:
            again.append((number, run))
        else:
            skipped.append(SkippedDataStep(plan_name, number, statement.summary, run.ran_at))
    return Decision(plan_name, tuple(skipped), tuple(changed), tuple(again))


@on_own_tables
def record(cur, plan_file: str, number: int, statement) -> None:
    """Record a data step that just ran, on the cursor of its transaction."""
    try:
        cur.execute(f"INSERT INTO {TABLE} (plan_file, statement, sql_sha256) VALUES (%s, %s, %s)",
                    (plan_file, number, sql_sha256(statement)))
    except (psycopg2.errors.LockNotAvailable, psycopg2.errors.InsufficientPrivilege):
        raise  # said by on_own_tables
    except psycopg2.Error as exc:
        raise DatabaseError(f"{plan_file}: cannot record data step {number} in {TABLE}: {first_line(exc)}; "
                            f"its transaction was rolled back") from exc


@on_own_tables
def link(cur, plan_file: str, history_id: int) -> None:
    """Name the apply (its history row) that ran the steps recorded in this transaction."""
    cur.execute(f"UPDATE {TABLE} SET history_id = %s WHERE plan_file = %s AND history_id IS NULL",
                (history_id, plan_file))


@on_own_tables
def counts_by_apply(cur) -> dict[int, int] | None:
    """How many data steps each apply (history row id) ran; None when there is no record this role may
    read (a target last applied to by an older reconcile, or a reader granted only the history)."""
    if not _readable(cur):
        return None
    cur.execute(f"SELECT history_id, count(*) FROM {TABLE} WHERE history_id IS NOT NULL GROUP BY history_id")
    return dict(cur.fetchall())
