"""Stage 6: rehearse a plan on a scratch copy of the target's schema, then check that it converged.

Converged means both: migra finds nothing more to do, and our own catalog snapshot of the copy
equals the desired one (migra's re-diff cannot see what migra ignores).
"""

from __future__ import annotations

import dataclasses

import psycopg2

from .config import Config
from .diff import diff
from .errors import PlanNotConvergedError, ScratchError
from .inspection import Difference, InspectedDatabase, inspect_database, take_snapshot
from .plan import Plan, build_plan
from .scratch import ScratchDatabase, ScratchServer
from .servers import first_line


@dataclasses.dataclass(frozen=True)
class Rehearsal:
    remaining_statements: tuple[str, ...]  # what migra (+ corrections) would still do
    remaining_differences: tuple[Difference, ...]  # what the independent snapshot still sees
    reverse: Plan | None = None  # the rollback plan (declared -> target), when it too converged
    reverse_problem: str | None = None  # why there is no rollback plan

    @property
    def converged(self) -> bool:
        return not self.remaining_statements and not self.remaining_differences


def run_statements(conn, statements, label: str, begin=lambda cur: None) -> None:
    """Run a plan's statements in the connection's transaction, naming the one that fails.

    A statement marked commit_after is committed with everything before it; `begin(cur)` runs at
    the start and after each such commit (transaction-local settings end with the transaction).
    """
    committed_through = 0
    with conn.cursor() as cur:
        begin(cur)
        for number, statement in enumerate(statements, 1):
            if getattr(statement, "online_step", False):
                continue  # runs after the transaction: run_online_step
            try:
                cur.execute(statement.sql)
            except psycopg2.Error as exc:
                raise PlanStatementFailed(label, number, statement, exc, committed_through) from exc
            if statement.commit_after:
                conn.commit()
                committed_through = number
                begin(cur)


def run_online_step(conn, number: int, statement, label: str, session_settings: str = "") -> None:
    """One step outside the transaction (autocommit). A CREATE INDEX CONCURRENTLY that failed or was
    interrupted before leaves an INVALID index of the same name: drop it, then build it again."""
    from .online import index_name

    conn.autocommit = True
    with conn.cursor() as cur:
        try:
            if session_settings:
                cur.execute(session_settings)
            index = index_name(statement)
            if index is not None:
                cur.execute("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (index,))
                row = cur.fetchone()
                if row is not None and row[0]:
                    cur.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
            cur.execute(statement.sql)
        except psycopg2.Error as exc:
            raise PlanStatementFailed(label, number, statement, exc) from exc


class PlanStatementFailed(Exception):
    def __init__(self, label, number, statement, exc, committed_through=0):
        self.label, self.number, self.statement, self.error = label, number, statement, exc
        self.committed_through = committed_through
        message = (getattr(exc.diag, "message_primary", None) or first_line(exc)).strip()
        summary = getattr(statement, "summary", None) or statement.sql.strip().splitlines()[0][:80]
        super().__init__(f"{label}: statement {number} ({summary}) failed: {message}")


def rehearse(plan: Plan, target_url: str, current: InspectedDatabase, desired: InspectedDatabase,
             server: ScratchServer, config: Config, corrections=None) -> Rehearsal:
    """`current` and `desired` are the inspections the plan was made from; they are not inspected again."""
    scope = config.scope
    target_snapshot = current.snapshot
    with ScratchDatabase(server, "rehearsal", config.timeouts.connect_timeout_s) as copy:
        copy.prepare(config)
        present = tuple(s for s in scope.schemas if ("schema", s) in target_snapshot.objects)
        if all(kind == "schema" for kind, _key in target_snapshot.objects):
            copy.create_schemas(present)  # nothing in them: no need for pg_dump
        else:
            copy.load_schema_of(target_url, present)
        conn = copy.connect(autocommit=False)
        try:
            before = take_snapshot(conn, scope)
            if before.fingerprint != target_snapshot.fingerprint:
                first = before.differences(target_snapshot)[0].describe("copy", "target")
                raise ScratchError(f"the scratch copy of the target is not faithful, so the plan cannot be rehearsed: {first}")
            try:
                run_statements(conn, plan.statements, "rehearsal")
                conn.commit()
                for number, step in plan.online_steps:
                    run_online_step(conn, number, step, "rehearsal")
            except PlanStatementFailed as failed:
                raise PlanNotConvergedError(
                    f"the plan fails on a copy of the target, so it was not written: {failed}"
                ) from failed
        finally:
            conn.close()
        rehearsed = inspect_database(copy.url, scope, config.timeouts.connect_timeout_s)
        remaining = diff(rehearsed, desired, corrections)
        result = Rehearsal(
            tuple(s.sql for s in remaining.statements),
            tuple(rehearsed.snapshot.differences(desired.snapshot)),
        )
        if not result.converged:
            return result
        reverse, problem = _rehearse_reverse(plan, copy, rehearsed, current, config)
        return dataclasses.replace(result, reverse=reverse, reverse_problem=problem)


def _rehearse_reverse(plan: Plan, copy: ScratchDatabase, after_forward: InspectedDatabase,
                      original: InspectedDatabase, config: Config) -> tuple[Plan | None, str | None]:
    """The rollback plan: from the declared state (the rehearsed copy) back to the target as it is,
    applied to the same copy and checked to land exactly on the target's fingerprint."""
    backwards = diff(after_forward, original)
    reverse = build_plan(backwards, after_forward.snapshot, original.snapshot, plan.as_of)
    conn = copy.connect(autocommit=False)
    try:
        run_statements(conn, reverse.statements, "rollback rehearsal")
        conn.commit()
        back = take_snapshot(conn, config.scope)
    except PlanStatementFailed as failed:
        conn.rollback()
        return None, f"the reverse plan fails on the copy: {failed}"
    finally:
        conn.close()
    differences = back.differences(original.snapshot)
    if differences:
        return None, f"the reverse plan does not lead back: {differences[0].describe('after rollback', 'target')}"
    return reverse, None
