"""Stage 8: apply reviewed plans — lock, check, transaction, verify, history."""

from __future__ import annotations

import dataclasses
import functools
import time


from ..config import Config
from ..connections import connect
from ..errors import ApplyFailedError, DestructiveNotApprovedError, LockTimeoutError, StalePlanError
from ..inspection.snapshot import take_snapshot
from ..planning.hazards import classify
from ..planning.planfile import PlanFile
from ..runner import PlanStatementFailed, run_online_step, run_statements
from ..version import __version__
from . import data_steps, history
from .advisory_lock import acquire_apply_lock

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
    conn = connect(target_url, config.timeouts.connect_timeout_s, autocommit=True)
    try:
        with conn.cursor() as cur:
            acquire_apply_lock(cur, config.timeouts.apply_lock_wait_ms)
            history.ensure_table(cur)
            applied_names = history.applied_plan_names(history.read(cur))
        pending = pending_plans(plans, applied_names)
        for plan_file in pending:  # every one before any runs: an edited second plan stops the first too
            plan_file.check_sealed(f"{config.migrations_dir}/{plan_file.name}")
        done = []
        for plan_file in pending:
            on_progress(f"applying {plan_file.name} ({len(plan_file.plan.statements)} statements)")
            done.append(_apply_one(conn, config, plan_file, allow_destructive, git_commit, applied_by, on_progress,
                                   rerun_data_steps=rerun_data_steps))
        return ApplyResult(tuple(done), len(plans) - len(pending))
    finally:
        conn.close()  # closing the session releases the advisory lock


LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout


def _apply_one(conn, config: Config, plan_file: PlanFile, allow_destructive: bool,
               git_commit: str | None, applied_by: str, on_progress=lambda message: None,
               record_as: str | None = None, rolls_back: str | None = None,
               rerun_data_steps: bool = False) -> AppliedPlan:
    """Apply one plan; when a statement times out waiting for a lock, roll back and try again later,
    so that a long-running query delays the deploy rather than the deploy blocking every query."""
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
    plan = plan_file.plan
    name = record_as or plan_file.name
    started = time.monotonic()
    steps = plan.online_steps
    with conn.cursor() as cur:
        done = history.steps_done(cur, name) if steps else set()
        data = _data_steps(cur, plan_file, name, rerun_data_steps, 0 in done, on_progress)
    conn.autocommit = False
    timeouts = (f"{config.timeouts.lock_timeout_ms}ms", f"{config.timeouts.statement_timeout_ms}ms")

    def begin(cur):
        # row_security off: a data step on a table with forced RLS must fail loudly for a role that
        # cannot bypass RLS, rather than silently touch only the rows the policies let it see.
        cur.execute("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true), "
                    "set_config('row_security', 'off', true)", timeouts)

    try:
        with conn.cursor() as cur:
            if 0 in done:
                on_progress(f"{plan_file.name}: its transaction was committed by an earlier apply; resuming its online steps")
            else:
                _run_transaction(conn, cur, config, plan_file, allow_destructive, begin, data.skip,
                                 functools.partial(_record_data_step, name))
                if steps:
                    history.mark_step(cur, name, 0)
                    conn.commit()
            if steps:
                # Concurrent builds are exempt from statement_timeout; lock_timeout still bounds every wait.
                settings = f"SET lock_timeout = '{timeouts[0]}'; SET statement_timeout = 0"
                for number, step in steps:
                    if number in done:
                        continue
                    on_progress(f"{plan_file.name}: online step {number}: {step.summary}")
                    try:
                        run_online_step(conn, number, step, plan_file.name, settings)
                    except PlanStatementFailed as failed:
                        if getattr(failed.error, "pgcode", None) == LOCK_NOT_AVAILABLE:
                            raise ApplyFailedError(str(failed)) from failed  # retried, resuming here
                        raise ApplyFailedError(
                            f"{failed}; the plan's transaction and its earlier steps are committed: fix the cause "
                            f"and run apply again, which resumes from this step"
                        ) from failed
                    history.mark_step(cur, name, number)
                conn.autocommit = False
                begin(cur)
            after = take_snapshot(conn, config.scope)
            if after.fingerprint != plan.fingerprint_after:
                outcome = ("its statements are committed: run 'reconcile drift' to see what differs"
                           if steps else "rolled back, nothing was applied")
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
            if steps:
                history.clear_steps(cur, name)
            ran = sum(s.data_step for s in plan.statements) - len(data.skipped)
            if ran:
                data_steps.link(cur, name, history_id)
        conn.commit()
        return AppliedPlan(plan_file.name, len(plan.statements), duration_ms, ran, data.skipped)
    except BaseException:
        if not conn.autocommit:
            conn.rollback()
        raise
    finally:
        conn.autocommit = True


def _data_steps(cur, plan_file: PlanFile, name: str, rerun: bool, resuming: bool, on_progress) -> data_steps.Decision:
    """Which of the plan's data steps ran before (recorded under `name`), said as progress. Resuming
    the online steps of a plan whose transaction (data steps included) committed: none runs now."""
    statements = plan_file.plan.statements
    if resuming or not any(s.data_step for s in statements):
        return data_steps.Decision(plan_file.name)
    decision = data_steps.decide(plan_file.name, statements, data_steps.last_runs(cur, name), rerun=rerun)
    for line in decision.progress():
        on_progress(line)
    return decision


def _record_data_step(name: str, cur, number: int, statement) -> None:
    """After each statement of the plan's transaction: a data step is recorded in that transaction."""
    if statement.data_step:
        data_steps.record(cur, name, number, statement)


def _run_transaction(conn, cur, config: Config, plan_file: PlanFile, allow_destructive: bool, begin,
                     skip=frozenset(), ran=None) -> None:
    """The plan's transactional part: check the fingerprint and the approval, then run it."""
    plan = plan_file.plan
    begin(cur)
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
    try:
        run_statements(conn, plan.statements, plan_file.name, begin, skip=skip, ran=ran)
    except PlanStatementFailed as failed:
        if failed.committed_through:
            raise ApplyFailedError(
                f"{failed}; statements 1-{failed.committed_through} were committed first (the plan commits "
                f"in parts, see its 'commit here' lines) and stay applied, the rest was rolled back: plan "
                f"again from here"
            ) from failed
        raise ApplyFailedError(f"{failed}; rolled back, nothing was applied") from failed
