"""Stage 6: rehearse a plan on a scratch copy of the target's schema, then check that it converged;
meanwhile rehearse its reverse on the scratch database holding the declared state.

Converged means our own catalog snapshot of the copy equals the desired one. It is the independent
view (it sees what migra ignores, and a re-diff by migra cannot), and the one the reverse rehearsal,
`check` and `apply` judge by too. Only a plan that did not converge has the copy read again by
schemainspect and diffed by migra, to say what is still to do: at thousands of tables that second
reading and re-diff cost about a seventh of a plan's time and a whole view's memory, and when the
snapshots agree they have never found anything (every fixture checks both).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from ..config import Config
from ..diff.corrections.retention import REATTACH, reattached
from ..diff.migra_diff import diff
from ..diff.operations import DiffContext
from ..diff.scope import diff_on, relations, relations_to_diff
from ..errors import PlanNotConvergedError, ScratchError
from ..inspection.migra_view import InspectedDatabase, inspect_database
from ..inspection.snapshot import CatalogSnapshot, Difference, differences_in
from ..planning.build import Plan, build_plan
from ..runner import PlanStatementFailed, in_one_transaction, run_on_scratch, run_statements
from ..scratch.databases import ScratchDatabase

log = logging.getLogger(__name__)

# A scoped reverse runs in one transaction (to be rolled back if it does not lead back): kept to as
# many relations as stay well within a default server's lock table (64 slots per connection, shared).
ONE_TRANSACTION_RELATIONS = 200


@dataclasses.dataclass(frozen=True)
class Rehearsal:
    remaining_statements: tuple[str, ...]  # what migra (+ corrections) would still do
    remaining_differences: tuple[Difference, ...]  # what the independent snapshot still sees
    reverse: Plan | None = None  # the rollback plan (declared -> target), when it too converged
    reverse_problem: str | None = None  # why there is no rollback plan

    @property
    def converged(self) -> bool:
        return not self.remaining_statements and not self.remaining_differences


def rehearse(plan: Plan, copy: ScratchDatabase, declared: ScratchDatabase, current: InspectedDatabase,
             desired: InspectedDatabase, config: Config, context: DiffContext = DiffContext(), *,
             reverse_to: CatalogSnapshot | None = None, reverse_trailing=(), archived=None,
             copy_checked: bool = False) -> Rehearsal:
    """Run the plan on `copy` (see copy_target) and check that it reaches the declared state.

    `current` and `desired` are the inspections the plan was made from; `declared` is the database
    `desired` was read from. While the plan runs forward on the copy, a second thread builds the
    reverse plan and runs it on `declared`: the forward run must reach exactly that state (checked
    below, else the way back is not kept), so running back from it proves the same as running back
    on the rehearsed copy, on another backend at the same time.

    With renames (plan's leading ALTER ... RENAMEs), `copy` and `current` are the target after them:
    the reverse then ends with `reverse_trailing` (the renames undone) and must land on `reverse_to`.

    `archived`: partitions the plan moves to an archive schema (retention.archived_by). The reverse
    moves them back and attaches them, so it needs them where the plan put them: it is then run on
    `copy`, once the plan has run there, rather than on `declared` beside it.

    `copy_checked`: the copy was read and found to show exactly `current.snapshot` (copy_target says
    so); else it is read first, and a copy that is not the target refuses the rehearsal.
    """
    scope = config.scope
    way_back = _ReverseRehearsal(desired, current, copy if archived else declared, plan.as_of, config, reverse_to,
                                 reverse_trailing, context=context, archived=archived or {})
    with ThreadPoolExecutor(max_workers=1) as beside:
        reverse_run = None if archived else beside.submit(way_back.run)
        try:
            conn = copy.connect(autocommit=False)
            try:
                unfaithful = () if copy_checked else differences_in(conn, scope, current.snapshot)
                if unfaithful:
                    first = unfaithful[0].describe("copy", "target")
                    raise ScratchError(f"the scratch copy of the target is not faithful, so the plan cannot be rehearsed: {first}")
                try:
                    run_on_scratch(conn, plan.statements, "rehearsal", copy.inert)
                    copy.inert.restore(conn)
                    conn.commit()
                except PlanStatementFailed as failed:
                    raise PlanNotConvergedError(
                        f"the plan fails on a copy of the target, so it was not written: {failed}{_what_to_declare(failed)}"
                    ) from failed
                differences = tuple(differences_in(conn, scope, desired.snapshot))
            finally:
                conn.close()
            remaining = ()
            if differences:
                way_back.cancel()  # from somewhere else than the declared state, it proves nothing
                remaining = _still_to_do(copy, desired, config, context)
        except BaseException:
            way_back.cancel()
            raise
        result = Rehearsal(remaining, differences)
        if not result.converged:
            way_back.cancel()
            return result
        reverse, problem = reverse_run.result() if reverse_run is not None else way_back.run()
    return dataclasses.replace(result, reverse=reverse, reverse_problem=problem)


def _still_to_do(copy: ScratchDatabase, desired: InspectedDatabase, config: Config, context: DiffContext) -> tuple[str, ...]:
    """What migra (with the corrections) would still do on the rehearsed copy: the statements a plan that
    did not converge is missing, as the error lists them."""
    timeout = config.timeouts.connect_timeout_s
    if desired.partial is None:
        rehearsed = inspect_database(copy.url, config.scope, timeout)
        return tuple(s.sql for s in diff(rehearsed, desired, context, current_used_once=True).statements)
    # The declared state's view was read without some relations (the plan was diffed without them): the
    # copy is read, and diffed, without them too. (Read again whole, the declared database might show
    # part of a reverse plan that ran on it.)
    rehearsed = inspect_database(copy.url, config.scope, timeout, leaving_out=desired.partial)
    kept = frozenset((relations(rehearsed.snapshot) | relations(desired.snapshot)) - desired.partial)
    return tuple(s.sql for s in diff_on(kept, rehearsed, desired, context).statements)


# SQLSTATEs of a type change PostgreSQL cannot make by a cast: no cast exists (cannot_coerce), or
# none it may apply on its own (datatype_mismatch: "cannot be cast automatically").
NO_CAST = ("42846", "42804")


def _what_to_declare(failed: PlanStatementFailed) -> str:
    """For a type change PostgreSQL cannot make by a cast: the directive that says how."""
    facts = failed.statement.facts
    actions = facts.actions if facts.node == "AlterTableStmt" else ()
    if getattr(failed.error, "pgcode", None) not in NO_CAST or not any(
            a.subtype == "AT_AlterColumnType" for a in actions):
        return ""
    column = next(a.name for a in actions if a.subtype == "AT_AlterColumnType")
    return (f"; declare how its values convert, right before the column {column} in its CREATE TABLE: "
            f"'-- reconcile: using <expression>' (e.g. -- reconcile: using to_timestamp({column}))")


class _ReverseRehearsal:
    """The rollback plan (from the declared state back to the target as it is), built and then run on
    the declared database, and checked to land exactly on the target's fingerprint. Runs on its own
    thread; cancel() stops it (its result is then not wanted)."""

    def __init__(self, desired: InspectedDatabase, current: InspectedDatabase, declared: ScratchDatabase,
                 as_of, config: Config, back_to: CatalogSnapshot | None = None, trailing=(), *,
                 context: DiffContext = DiffContext(), archived=None):
        self.archived = archived or {}
        self.desired, self.current, self.declared = desired, current, declared
        # Only the batch size: the way back expires no partition (it returns to the target as it is).
        self.context = DiffContext(batch_rows=context.batch_rows)
        self.back_to, self.trailing = back_to or current.snapshot, tuple(trailing)
        self.as_of, self.scope = as_of, config.scope
        self._lock = threading.Lock()
        self._cancelled = False
        self._conn = None

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._conn is not None:
                self._conn.cancel()  # interrupts the statement running on the server

    def run(self) -> tuple[Plan | None, str | None]:
        scoped = None
        if not self.archived and not self.trailing and self.back_to is self.current.snapshot:
            scoped = relations_to_diff(self.desired.snapshot, self.current.snapshot)
        if scoped is not None and len(scoped) <= ONE_TRANSACTION_RELATIONS:
            outcome = self._run_scoped(scoped)
            if outcome is not None:
                return outcome
        with self._lock:
            if self._cancelled:
                return None, "not rehearsed"
        return self._run_whole()

    def _whole_reverse_plan(self) -> Plan:
        # Views read without some relations (for the plan's diff) are read again whole: the declared
        # database as it is (a scoped reverse that did not lead back was rolled back), the target as it is.
        changes = diff(self.desired.whole(), self.current.whole(), self.context)
        statements = tuple(reattached(list(changes.statements), self.archived)) + self.trailing
        used = changes.corrections_used + ((REATTACH,) if self.archived else ())
        changes = dataclasses.replace(changes, statements=statements, corrections_used=used)
        return build_plan(changes, self.desired.snapshot, self.back_to, self.as_of)

    def _connect(self):
        """The declared database's connection, or None once cancelled."""
        with self._lock:
            if self._cancelled:
                return None
            self._conn = self.declared.connect(autocommit=False)
            return self._conn

    def _let_go(self, conn) -> None:
        with self._lock:
            self._conn = None
            conn.close()

    def _run_scoped(self, kept: frozenset[str]) -> tuple[Plan | None, str | None] | None:
        """The reverse diffed on the `kept` relations alone (diff/scope.py), each view cut down right
        after it is thawed so that only one is ever whole; run in one transaction, committed only when
        it leads back exactly. None: it did not (or could not run so), and the whole diff is made."""
        try:
            reverse = build_plan(diff_on(kept, self.desired, self.current, self.context), self.desired.snapshot,
                                 self.back_to, self.as_of)
        except Exception as exc:  # noqa: BLE001 (the whole diff, made next, is what a plan did before)
            log.debug("the reverse plan is diffed whole: kept to %d relation(s), it failed (%s)", len(kept), exc)
            return None
        if not in_one_transaction(reverse.statements):
            return None
        conn = self._connect()
        if conn is None:
            return None, "not rehearsed"
        inert = copy.deepcopy(self.declared.inert)  # the declared database's, unless this is rolled back
        try:
            inert.stub_again(conn)
            run_statements(conn, reverse.statements, "rollback rehearsal", batched=True, inert=inert)
            inert.restore(conn)
            differences = differences_in(conn, self.scope, self.back_to)
            if differences:
                conn.rollback()
                log.debug("the reverse plan is diffed whole: kept to %d relation(s), it did not lead back (%s)", len(kept),
                         differences[0].describe("after rollback", "target"))
                return None
            conn.commit()
        except PlanStatementFailed as failed:
            conn.rollback()
            log.debug("the reverse plan is diffed whole: kept to %d relation(s), it failed (%s)", len(kept), failed)
            return None
        finally:
            self._let_go(conn)
        self.declared.inert = inert
        log.debug("the reverse plan was diffed on %d relation(s)", len(kept))
        return reverse, None

    def _run_whole(self) -> tuple[Plan | None, str | None]:
        reverse = self._whole_reverse_plan()
        conn = self._connect()
        if conn is None:
            return None, "not rehearsed"
        try:
            # The declared database's functions have their bodies again (for its inspection): stubbed
            # again first, so that the reverse plan's statements cannot run them either.
            self.declared.inert.stub_again(conn)
            run_on_scratch(conn, reverse.statements, "rollback rehearsal", self.declared.inert)
            self.declared.inert.restore(conn)
            conn.commit()
            differences = differences_in(conn, self.scope, self.back_to)
        except PlanStatementFailed as failed:
            conn.rollback()
            return None, f"the reverse plan fails on the declared state: {failed}"
        finally:
            self._let_go(conn)
        if differences:
            return None, f"the reverse plan does not lead back: {differences[0].describe('after rollback', 'target')}"
        return reverse, None
