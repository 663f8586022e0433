"""Stage 8 (deploy): the history of applied plans, in the tool's own schema on the target."""

from __future__ import annotations

import dataclasses
import datetime as dt

import psycopg2
import psycopg2.errors

from ..config import TOOL_SCHEMA
from ..connections import first_line
from ..errors import DatabaseError
from . import data_steps
from .own_tables import on_own_tables

TABLE = f"{TOOL_SCHEMA}.history"
PROGRESS = f"{TOOL_SCHEMA}.progress"

_CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {TOOL_SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_file           text NOT NULL,
    plan_sha256         text NOT NULL,
    fingerprint_before  text NOT NULL,
    fingerprint_after   text NOT NULL,
    git_commit          text,
    applied_at          timestamptz NOT NULL DEFAULT now(),
    applied_by          text NOT NULL,
    duration_ms         integer NOT NULL,
    statement_count     integer NOT NULL,
    tool_version        text NOT NULL
);
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS rolled_back_at timestamptz;
-- The database role that applied it (applied_by is the OS user and host). Added without a default, so
-- that rows from before stay unknown (NULL) rather than named after whoever adds the column.
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS applied_as text;
ALTER TABLE {TABLE} ALTER COLUMN applied_as SET DEFAULT current_user;
-- A plan is in effect once at most; after a rollback it may be applied again.
CREATE UNIQUE INDEX IF NOT EXISTS history_plan_in_effect ON {TABLE} (plan_file) WHERE rolled_back_at IS NULL;
-- Units of a plan with online steps (runner.plan_units), as they complete, by the number of their
-- first statement; step 0: the plan was checked against the target and began. A plan is recorded in history
-- when all are done; until then an apply resumes from here. A step run in batches records, in each
-- batch's transaction, the key it reached (done false) until its last batch.
CREATE TABLE IF NOT EXISTS {PROGRESS} (
    plan_file  text NOT NULL,
    step       integer NOT NULL,
    done_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_file, step)
);
ALTER TABLE {PROGRESS} ADD COLUMN IF NOT EXISTS done boolean NOT NULL DEFAULT true;
ALTER TABLE {PROGRESS} ADD COLUMN IF NOT EXISTS resume_after text[];
"""


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    plan_file: str
    plan_sha256: str
    fingerprint_before: str
    fingerprint_after: str
    git_commit: str | None
    applied_at: dt.datetime
    applied_by: str  # the OS user and host that ran reconcile
    duration_ms: int
    rolled_back_at: dt.datetime | None = None
    applied_as: str | None = None  # the database role (None for rows written before it was recorded)
    id: int | None = None  # the history row's (data_steps.counts_by_apply is keyed by it)

    @property
    def is_plan(self) -> bool:
        """A reviewed plan file (not a maintain run or a rollback)."""
        return not self.plan_file.startswith(("maintain ", "rollback/"))


# What a complete set of reconcile's tables has (ensure_table), checked from the catalog first: ALTER
# TABLE takes an ACCESS EXCLUSIVE lock even when IF NOT EXISTS finds the column, which would queue every
# reader of the history (status, drift) behind it, and needs the tables' owner.
_COMPLETE = f"""
SELECT count(*) = 7 FROM pg_attribute
WHERE NOT attisdropped AND (
       (attrelid = to_regclass('{TABLE}') AND attname IN ('rolled_back_at', 'applied_as') AND
        (attname <> 'applied_as' OR atthasdef))
    OR (attrelid = to_regclass('{PROGRESS}') AND attname IN ('done', 'resume_after'))
    OR (attrelid = to_regclass('{data_steps.TABLE}') AND attname = 'history_id')
    OR (attrelid = to_regclass('{TOOL_SCHEMA}.history_plan_in_effect') AND attnum = 1)
    OR (attrelid = to_regclass('{TOOL_SCHEMA}.data_steps_plan_statement') AND attnum = 1))
"""
# How long making or completing the tables may wait for a lock on them (another session reading them).
ENSURE_LOCK_TIMEOUT = "10s"


@on_own_tables
def ensure_table(cur) -> None:
    """The history table (and the record of data steps run), made on first use, or completed on a target
    an older reconcile applied to; a deploy role that may not make them is told how."""
    cur.execute(_COMPLETE)
    if cur.fetchone()[0]:
        return
    try:
        cur.execute(f"SELECT set_config('lock_timeout', '{ENSURE_LOCK_TIMEOUT}', true);" + _CREATE + data_steps.CREATE)
    except psycopg2.errors.InsufficientPrivilege as exc:
        raise DatabaseError(
            f"cannot create the history table {TABLE}: {first_line(exc)}; once, as the database's owner: "
            f"GRANT CREATE ON DATABASE <this database> TO <the deploy role> (or create the schema "
            f"{TOOL_SCHEMA} with the deploy role as its owner)"
        ) from exc
    except psycopg2.errors.LockNotAvailable:
        raise  # said by on_own_tables
    except psycopg2.Error as exc:
        raise DatabaseError(f"cannot create the history table {TABLE}: {first_line(exc)}") from exc


@on_own_tables
def read(cur) -> list[HistoryEntry]:
    """Applied plans, oldest first; empty when the target has never been applied to."""
    cur.execute("SELECT to_regclass(%s)", (TABLE,))
    if cur.fetchone()[0] is None:
        return []
    # applied_as through to_jsonb: a history table from an older reconcile has no such column, and
    # reading (drift, status) must not change it.
    cur.execute(
        f"SELECT plan_file, plan_sha256, fingerprint_before, fingerprint_after, git_commit, applied_at, "
        f"applied_by, duration_ms, rolled_back_at, to_jsonb(h) ->> 'applied_as', id FROM {TABLE} h ORDER BY id"
    )
    return [HistoryEntry(*row) for row in cur.fetchall()]


def applied_plan_names(entries: list[HistoryEntry]) -> set[str]:
    """Plans in effect: applied and not rolled back since."""
    return {e.plan_file for e in entries if e.rolled_back_at is None}


@dataclasses.dataclass(frozen=True)
class StepsRecorded:
    """What reconcile.progress holds for a plan whose apply began and is not recorded as applied."""

    plan_file: str
    steps_done: frozenset[int]  # numbers of the units done (0: checked against the target and began)
    last_at: dt.datetime  # when the last of them was done (or a batch of one)


@on_own_tables
def unfinished(cur) -> list[StepsRecorded]:
    """Plans an apply began and did not finish (interrupted, or running now), oldest first; none known
    when there is no such table (no apply yet) or this role may not read it (a reader granted the
    history alone)."""
    cur.execute("SELECT CASE WHEN to_regclass(%s) IS NULL THEN false "
                "ELSE has_table_privilege(to_regclass(%s), 'SELECT') END", (PROGRESS, PROGRESS))
    if not cur.fetchone()[0]:
        return []
    cur.execute(f"SELECT plan_file, coalesce(array_agg(step) FILTER (WHERE done), '{{}}'), max(done_at) "
                f"FROM {PROGRESS} GROUP BY plan_file ORDER BY max(done_at)")
    return [StepsRecorded(name, frozenset(steps), last) for name, steps, last in cur.fetchall()]


@on_own_tables
def steps_done(cur, plan_file: str) -> set[int]:
    cur.execute(f"SELECT step FROM {PROGRESS} WHERE plan_file = %s AND done",
                (plan_file,))
    return {row[0] for row in cur.fetchall()}


@on_own_tables
def mark_step(cur, plan_file: str, step: int) -> None:
    cur.execute(f"INSERT INTO {PROGRESS} (plan_file, step) VALUES (%s, %s) ON CONFLICT (plan_file, step) "
                f"DO UPDATE SET done = true, done_at = now(), resume_after = NULL", (plan_file, step))


@on_own_tables
def mark_batch(cur, plan_file: str, step: int, key: list | None) -> None:
    """In a batch's transaction: how far a step run in batches got (key None: its last batch, so done)."""
    if key is None:
        mark_step(cur, plan_file, step)
        return
    cur.execute(f"INSERT INTO {PROGRESS} (plan_file, step, done, resume_after) VALUES (%s, %s, false, %s) "
                f"ON CONFLICT (plan_file, step) DO UPDATE SET resume_after = EXCLUDED.resume_after, done_at = now()",
                (plan_file, step, key))


@on_own_tables
def resume_point(cur, plan_file: str, step: int) -> list | None:
    """The key the last committed batch of a step reached, if it was interrupted."""
    cur.execute(f"SELECT resume_after FROM {PROGRESS} WHERE plan_file = %s AND step = %s AND NOT done",
                (plan_file, step))
    row = cur.fetchone()
    return row[0] if row else None


@on_own_tables
def clear_steps(cur, plan_file: str) -> None:
    cur.execute(f"DELETE FROM {PROGRESS} WHERE plan_file = %s", (plan_file,))


@on_own_tables
def mark_rolled_back(cur, plan_file: str) -> None:
    # Only the row in effect: an earlier apply of the same plan keeps the time of its own rollback.
    cur.execute(f"UPDATE {TABLE} SET rolled_back_at = now() WHERE plan_file = %s AND rolled_back_at IS NULL",
                (plan_file,))


@on_own_tables
def record(cur, *, plan_file, plan_sha256, fingerprint_before, fingerprint_after, git_commit,
           applied_by, duration_ms, statement_count, tool_version) -> int:
    """Record an applied plan (or a maintain run, or a rollback); returns its row's id."""
    cur.execute(
        f"INSERT INTO {TABLE} (plan_file, plan_sha256, fingerprint_before, fingerprint_after, git_commit, "
        f"applied_by, duration_ms, statement_count, tool_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        f"RETURNING id",
        (plan_file, plan_sha256, fingerprint_before, fingerprint_after, git_commit, applied_by, duration_ms,
         statement_count, tool_version),
    )
    return cur.fetchone()[0]
