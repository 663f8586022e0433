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
from .inspection import CatalogSnapshot, Difference, inspect_database, take_snapshot
from .plan import Plan
from .scratch import ScratchDatabase, ScratchServer
from .servers import first_line


@dataclasses.dataclass(frozen=True)
class Rehearsal:
    remaining_statements: tuple[str, ...]  # what migra (+ corrections) would still do
    remaining_differences: tuple[Difference, ...]  # what the independent snapshot still sees

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
            try:
                cur.execute(statement.sql)
            except psycopg2.Error as exc:
                raise PlanStatementFailed(label, number, statement, exc, committed_through) from exc
            if statement.commit_after:
                conn.commit()
                committed_through = number
                begin(cur)


class PlanStatementFailed(Exception):
    def __init__(self, label, number, statement, exc, committed_through=0):
        self.label, self.number, self.statement, self.error = label, number, statement, exc
        self.committed_through = committed_through
        message = (getattr(exc.diag, "message_primary", None) or first_line(exc)).strip()
        summary = getattr(statement, "summary", None) or statement.sql.strip().splitlines()[0][:80]
        super().__init__(f"{label}: statement {number} ({summary}) failed: {message}")


def rehearse(plan: Plan, target_url: str, target_snapshot: CatalogSnapshot, desired_url: str,
             server: ScratchServer, config: Config, corrections=None) -> Rehearsal:
    scope = config.scope
    with ScratchDatabase(server, "rehearsal", config.timeouts.connect_timeout_s) as copy:
        copy.prepare(config)
        present = tuple(s for s in scope.schemas if ("schema", s) in target_snapshot.objects)
        if present:
            copy.load_schema_of(target_url, present)
        conn = copy.connect(autocommit=False)
        try:
            before = take_snapshot(conn, scope)
            if before.fingerprint != target_snapshot.fingerprint:
                first = before.differences(target_snapshot)[0].describe("copy", "target")
                raise ScratchError(f"the scratch copy of the target is not faithful, so the plan cannot be rehearsed: {first}")
            try:
                run_statements(conn, plan.statements, "rehearsal")
            except PlanStatementFailed as failed:
                raise PlanNotConvergedError(
                    f"the plan fails on a copy of the target, so it was not written: {failed}"
                ) from failed
            conn.commit()
        finally:
            conn.close()
        rehearsed = inspect_database(copy.url, scope, config.timeouts.connect_timeout_s)
        desired = inspect_database(desired_url, scope, config.timeouts.connect_timeout_s)
        remaining = diff(rehearsed, desired, corrections)
        return Rehearsal(
            tuple(s.sql for s in remaining.statements),
            tuple(rehearsed.snapshot.differences(desired.snapshot)),
        )
