"""Stage 8: apply reviewed plans — lock, check, transaction, verify, history."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import TYPE_CHECKING

from ..config import Config
from ..connections import connect_to_change, connection_lost, describe, first_line, roll_back_if_alive
from ..errors import (
    ApplyFailedError, ApplyInterruptedError, DestructiveNotApprovedError, HistoryUnavailableError, LockTimeoutError,
    StalePlanError, interruption,
)
from ..version import __version__
from . import data_steps, history

# The runner, the hazards and the plan file are imported where a plan is applied: ApplyResult is
# re-exported by results.py, which every command imports.
if TYPE_CHECKING:  # annotations only
    from ..planning.planfile import PlanFile


@dataclasses.dataclass(frozen=True)
class AppliedPlan:
    name: str
    statements: int
    duration_ms: int
    data_steps_ran: int = 0
    # Data steps not run because they ran before, in an apply since rolled back (data_steps.py).
    skipped_data_steps: tuple[data_steps.SkippedDataStep, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "statements": self.statements, "duration_ms": self.duration_ms,
                "data_steps_ran": self.data_steps_ran,
                "skipped_data_steps": [s.to_dict() for s in self.skipped_data_steps]}


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    applied: tuple[AppliedPlan, ...]
    already_applied: int  # plans found already applied (skipped)
    target: str = ""  # the target's password-free name

    @property
    def skipped_data_steps(self) -> tuple[data_steps.SkippedDataStep, ...]:
        return tuple(s for a in self.applied for s in a.skipped_data_steps)

    def to_dict(self) -> dict:
        return {"target": self.target, "already_applied": self.already_applied,
                "applied": [a.to_dict() for a in self.applied],
                "skipped_data_steps": [s.to_dict() for s in self.skipped_data_steps]}


def pending_plans(plans: list[PlanFile], applied_names: set[str]) -> list[PlanFile]:
    return [p for p in sorted(plans, key=lambda p: p.name) if p.name not in applied_names]


def apply_plans(config: Config, target_url: str, plans: list[PlanFile], *, allow_destructive: bool,
                git_commit: str | None, applied_by: str, on_progress=lambda message: None,
                rerun_data_steps: bool = False) -> ApplyResult:
    """Apply the pending plans in name order. rerun_data_steps: run again the data steps recorded as
    run by an earlier apply of the same plan (since rolled back), which are otherwise skipped."""
    from .advisory_lock import lock_for_change

    conn = connect_to_change(target_url, config.timeouts.connect_timeout_s)
    try:
        try:
            with conn.cursor() as cur:
                lock_for_change(cur, config.timeouts)
                history.ensure_table(cur)
                applied_names = history.applied_plan_names(history.read(cur))
        except HistoryUnavailableError as exc:
            raise exc.after("", "nothing was applied (run 'reconcile apply' again once fixed)") from exc
        pending = pending_plans(plans, applied_names)
        for plan_file in pending:  # every one before any runs: an edited second plan stops the first too
            plan_file.check_sealed(f"{config.migrations_dir}/{plan_file.name}")
        done = []
        for plan_file in pending:
            on_progress(f"applying {plan_file.name} ({len(plan_file.plan.statements)} statements)")
            try:
                done.append(_apply_one(conn, config, plan_file, allow_destructive, git_commit, applied_by,
                                       on_progress, rerun_data_steps=rerun_data_steps))
            except ApplyInterruptedError as exc:
                if done:  # the plans before it are applied: say so on the same line
                    raise ApplyInterruptedError(f"{exc} ({', '.join(a.name for a in done)} applied before it)") from exc
                raise
        return ApplyResult(tuple(done), len(plans) - len(pending))
    except KeyboardInterrupt as exc:  # before any plan began (the lock, the history): nothing changed
        raise ApplyInterruptedError(f"{_cause(exc, describe(target_url))} before any plan began; nothing was "
                                    f"applied: run 'reconcile apply' again") from exc
    finally:
        conn.close()  # closing the session releases the advisory lock


LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout


def _apply_one(conn, config: Config, plan_file: PlanFile, allow_destructive: bool,
               git_commit: str | None, applied_by: str, on_progress=lambda message: None,
               record_as: str | None = None, rolls_back: str | None = None,
               rerun_data_steps: bool = False) -> AppliedPlan:
    """Apply one plan; when a statement times out waiting for a lock, roll back and try again later,
    so that a long-running query delays the deploy rather than the deploy blocking every query."""
    from ..runner import PlanStatementFailed

    tries = config.timeouts.lock_retries + 1
    delay = config.timeouts.lock_retry_delay_ms / 1000
    for attempt in range(1, tries + 1):
        try:
            return _attempt(conn, config, plan_file, allow_destructive, git_commit, applied_by, record_as, rolls_back,
                            on_progress, rerun_data_steps)
        except ApplyFailedError as exc:
            failed = exc.__cause__
            lock_timeout = (isinstance(failed, PlanStatementFailed) and failed.committed_through == 0
                            and getattr(failed.error, "pgcode", None) == LOCK_NOT_AVAILABLE)
            if not lock_timeout:
                raise
            if attempt == tries:
                raise LockTimeoutError(
                    f"{plan_file.name}: statement {failed.number} ({failed.statement.summary}) could not get its "
                    f"lock within lock_timeout in {tries} tries; rolled back, nothing was applied: a long "
                    f"transaction holds the table (see pg_stat_activity), or raise timeouts.lock_retries"
                ) from exc
            on_progress(f"{plan_file.name}: statement {failed.number} waited longer than lock_timeout for its "
                        f"lock; rolled back, trying again in {delay:g}s (try {attempt + 1} of {tries})")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


def _attempt(conn, config: Config, plan_file: PlanFile, allow_destructive: bool, git_commit: str | None,
             applied_by: str, record_as: str | None, rolls_back: str | None, on_progress,
             rerun_data_steps: bool) -> AppliedPlan:
    from ..inspection.snapshot import take_snapshot
    from ..runner import plan_units

    plan = plan_file.plan
    name = record_as or plan_file.name
    started = time.monotonic()
    units = plan_units(plan.statements)
    # A plan of one transaction records nothing until it is applied; else each part as it is done, and
    # step 0 once the plan was checked against the target and began (a resumed apply does not check again).
    tracked = len(units) > 1 or (bool(units) and units[0].alone)
    with conn.cursor() as cur:
        done = history.steps_done(cur, name) if tracked else set()
        data = _data_steps(cur, plan_file, name, units, rerun_data_steps, done, on_progress)
    timeouts = (f"{config.timeouts.lock_timeout_ms}ms", f"{config.timeouts.statement_timeout_ms}ms")

    def begin(cur):
        # row_security off: a data step on a table with forced RLS must fail loudly for a role that
        # cannot bypass RLS, rather than silently touch only the rows the policies let it see.
        cur.execute("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true), "
                    "set_config('row_security', 'off', true)", timeouts)

    checked = bool(done)  # an apply that resumes checked the plan against the target when it began
    committed_units = set(done)  # by this apply or an earlier one (said if it stops)
    info = conn.info  # named while the session is alive: a lost one is said with it
    target = f"{info.user}@{info.host}:{info.port}/{info.dbname}"
    committing = False
    if done:
        finished = sum(unit.number in done for unit in units)
        on_progress(f"{plan_file.name}: resuming its online steps ({finished} of its {len(units)} steps were "
                    f"done by an earlier apply)")
    try:
        with conn.cursor() as cur:
            for unit in units:
                if unit.number in done:
                    continue
                if conn.autocommit:
                    conn.autocommit = False
                if not checked:
                    begin(cur)
                    _check_before(conn, config, plan_file, allow_destructive)
                    checked = True
                    if tracked:
                        history.mark_step(cur, name, 0)
                    if unit.alone:
                        conn.commit()
                if unit.alone:
                    _run_alone(conn, unit, name, plan_file, data, begin, timeouts, tracked, on_progress)
                    committed_units.add(unit.number)
                    continue
                _run_transaction(conn, cur, plan_file, unit, begin, data.skip, functools.partial(_record_data_step, name),
                                 resumable=tracked and unit is not units[0])
                if tracked:
                    history.mark_step(cur, name, unit.number)
                committing = True
                conn.commit()
                committing = False
                committed_units.add(unit.number)
            if conn.autocommit:
                conn.autocommit = False
            begin(cur)
            if not checked:  # a plan without statements
                _check_before(conn, config, plan_file, allow_destructive)
            after = take_snapshot(conn, config.scope)
            if after.fingerprint != plan.fingerprint_after:
                outcome = ("its statements are committed: run 'reconcile drift' to see what differs"
                           if tracked else "rolled back, nothing was applied")
                raise ApplyFailedError(
                    f"{plan_file.name}: after its statements the schema does not match the plan's expected "
                    f"fingerprint {plan.fingerprint_after[:19]}… (got {after.fingerprint[:19]}…); {outcome}"
                )
            duration_ms = int((time.monotonic() - started) * 1000)
            if rolls_back is not None:
                history.mark_rolled_back(cur, rolls_back)
            history_id = history.record(
                cur, plan_file=name, plan_sha256=plan_file.sha256,
                fingerprint_before=plan.fingerprint_before, fingerprint_after=plan.fingerprint_after,
                git_commit=git_commit, applied_by=applied_by, duration_ms=duration_ms,
                statement_count=len(plan.statements), tool_version=__version__,
            )
            if tracked:
                history.clear_steps(cur, name)
            ran = sum(s.data_step for s in plan.statements) - len(data.skipped)
            if ran:
                data_steps.link(cur, name, history_id)
        committing = True
        conn.commit()
        return AppliedPlan(plan_file.name, len(plan.statements), duration_ms, ran, data.skipped)
    except BaseException as exc:
        lost = connection_lost(conn)
        roll_back_if_alive(conn)
        if not (lost or isinstance(exc, (KeyboardInterrupt, HistoryUnavailableError))):
            raise
        where = _where_it_stopped(plan_file, units, committed_units, tracked, committing and lost,
                                  "reconcile rollback" if rolls_back is not None else "reconcile apply")
        if isinstance(exc, HistoryUnavailableError):
            raise exc.after(f"{plan_file.name}: ", where) from exc
        raise ApplyInterruptedError(f"{plan_file.name}: {_cause(exc, target)}; {where}") from exc
    finally:
        if not connection_lost(conn):
            conn.autocommit = True


def _cause(exc: BaseException, target: str) -> str:
    """Why an apply stopped, in a few words: a signal, or the session lost (with the server's reason)."""
    if isinstance(exc, KeyboardInterrupt):
        return interruption(exc)
    reason = exc
    while reason.__cause__ is not None:  # the driver's error under apply's own
        reason = reason.__cause__
    reason = getattr(reason, "error", reason)  # runner.PlanStatementFailed holds it
    return f"the connection to {target} was lost ({first_line(reason)})"


def _where_it_stopped(plan_file: PlanFile, units, finished: set[int], tracked: bool, commit_unknown: bool,
                      again: str = "reconcile apply") -> str:
    """What of the plan is committed when it stopped, and the command that continues."""
    if not tracked:
        if commit_unknown:
            return ("the connection was lost while its transaction committed: 'reconcile status' shows whether it "
                    f"is recorded as applied; '{again}' applies it if not")
        if any(s.commit_after for s in plan_file.plan.statements):
            return ("what ran before its last 'commit here' line passed stays committed, the rest was rolled back: "
                    "run 'reconcile drift', then plan again")
        return f"its transaction was rolled back, nothing of it was applied: run '{again}' again"
    total = len(units)
    stopped_at = next((index for index, unit in enumerate(units) if unit.number not in finished), None)
    if stopped_at is None:
        return (f"all {total} of its steps are committed, but it is not recorded as applied yet: run '{again}' "
                f"again, which checks the result and records it")
    committed = f"steps 1-{stopped_at} of {total} are committed" if stopped_at else f"none of its {total} steps is committed"
    return (f"{committed}, step {stopped_at + 1} ({describe_unit(units[stopped_at])}) did not finish: run "
            f"'{again}' again, which resumes from step {stopped_at + 1} (or 'reconcile repair' to keep "
            f"what it left)")


def describe_unit(unit) -> str:
    """A step of a plan as status and the messages name it."""
    first = unit.statements[0][1]
    if unit.alone:
        return f"online step, statement {unit.number}: {first.summary}"
    last = unit.statements[-1][0]
    span = f"statement {unit.number}" if last == unit.number else f"statements {unit.number}-{last}"
    return f"{span} in one transaction, from {first.summary}"


def _run_alone(conn, unit, name: str, plan_file: PlanFile, data, begin, timeouts, tracked: bool, on_progress) -> None:
    """One online step: a data step or a copy in batches (each batch its own transaction, recording how
    far it got), or a statement in autocommit (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT...)."""
    from ..runner import Batches, PlanStatementFailed, run_in_batches, run_online_step

    number, step = unit.statements[0]
    try:
        if number in data.skip:
            conn.autocommit = True
        elif step.batch_rows or step.data_step:
            with conn.cursor() as cur:
                resume = history.resume_point(cur, name, number) if tracked else None
            conn.commit()
            where = f", resuming after key {tuple(resume)}" if resume else ""
            on_progress(f"{plan_file.name}: online step {number}: {step.summary}"
                        + (f" (batches of {step.batch_rows} rows{where})" if step.batch_rows else ""))

            def record(cur, key):
                if key is None and step.data_step:
                    data_steps.record(cur, name, number, step)
                if tracked:
                    history.mark_batch(cur, name, number, key)

            run_in_batches(conn, number, step, plan_file.name,
                           Batches(step.batch_rows, begin, resume, record, on_progress))
            return
        else:
            on_progress(f"{plan_file.name}: online step {number}: {step.summary}")
            # Concurrent builds are exempt from statement_timeout; lock_timeout still bounds every wait.
            run_online_step(conn, number, step, plan_file.name,
                            f"SET lock_timeout = '{timeouts[0]}'; SET statement_timeout = 0")
    except PlanStatementFailed as failed:
        if getattr(failed.error, "pgcode", None) == LOCK_NOT_AVAILABLE:
            raise ApplyFailedError(str(failed)) from failed  # retried, resuming here
        raise ApplyFailedError(
            f"{failed}; what ran before it is committed: fix the cause and run apply again, which resumes "
            f"from this step"
        ) from failed
    if tracked:
        with conn.cursor() as cur:
            history.mark_step(cur, name, number)


def _data_steps(cur, plan_file: PlanFile, name: str, units, rerun: bool, done: set[int],
                on_progress) -> data_steps.Decision:
    """Which of the plan's data steps ran before (recorded under `name`), said as progress. Those an
    interrupted apply of this plan ran already (`done`, the parts it finished) are not run again."""
    statements = plan_file.plan.statements
    if not any(s.data_step for s in statements):
        return data_steps.Decision(plan_file.name)
    unit_of = {number: unit.number for unit in units for number, _ in unit.statements}
    runs = {n: run for n, run in data_steps.last_runs(cur, name).items() if unit_of.get(n) not in done}
    decision = data_steps.decide(plan_file.name, statements, runs, rerun=rerun and not done)
    for line in decision.progress():
        on_progress(line)
    return decision


def _record_data_step(name: str, cur, number: int, statement) -> None:
    """After each statement of the plan's transaction: a data step is recorded in that transaction."""
    if statement.data_step:
        data_steps.record(cur, name, number, statement)


def _check_before(conn, config: Config, plan_file: PlanFile, allow_destructive: bool) -> None:
    """Before anything of the plan runs, in the transaction of its first part: the target is still the
    one the plan was made for, and its destructive statements are approved."""
    from ..inspection.snapshot import take_snapshot
    from ..planning.hazards import classify

    plan = plan_file.plan
    current = take_snapshot(conn, config.scope)
    if current.fingerprint != plan.fingerprint_before:
        raise StalePlanError(
            f"{plan_file.name}: the database changed since this plan was made (fingerprint "
            f"{current.fingerprint[:19]}… is not the plan's before {plan.fingerprint_before[:19]}…); "
            f"nothing was applied: run 'reconcile drift' to see what changed, then plan again"
        )
    reasons = [reason for s in plan.statements if (reason := classify(s.sql, s.facts, current).destructive)]
    if reasons and not (allow_destructive or plan.destructive_approved):
        raise DestructiveNotApprovedError(
            f"{plan_file.name}: {len(reasons)} destructive statement(s) ({reasons[0]}); nothing was applied: "
            f"review them, then set '-- destructive-approved: yes' in the plan or pass --allow-destructive"
        )


def _run_transaction(conn, cur, plan_file: PlanFile, unit, begin, skip=frozenset(), ran=None, *,
                     resumable: bool = False) -> None:
    """One transactional part of the plan (all of it, for most plans)."""
    from ..runner import PlanStatementFailed, run_statements

    try:
        run_statements(conn, [s for _, s in unit.statements], plan_file.name, begin, skip=skip, ran=ran,
                       first=unit.number)
    except PlanStatementFailed as failed:
        if failed.committed_through:
            raise ApplyFailedError(
                f"{failed}; statements 1-{failed.committed_through} were committed first (the plan commits "
                f"in parts, see its 'commit here' lines) and stay applied, the rest was rolled back: plan "
                f"again from here"
            ) from failed
        if resumable:
            raise ApplyFailedError(
                f"{failed}; this part was rolled back, the parts before it are committed: fix the cause and run "
                f"apply again, which resumes from this part"
            ) from failed
        raise ApplyFailedError(f"{failed}; rolled back, nothing was applied") from failed
