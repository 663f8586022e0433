"""The public API's commands that compare the declared files with the live target, or read its
record: drift, maintain (which compares first), status, and repair. api.py re-exports them."""

from __future__ import annotations

import dataclasses
import datetime as dt

from .config import Config
from .connections import connected
from .declared.files import DesiredState, load_desired_state
from .errors import PendingPlansError, StalePlanError
from .inspection.security_drift import classify
from .inspection.snapshot import CatalogSnapshot, Difference, not_compared
from .lifecycle.windows import missing_partitions, moved_by_the_window, stranded_rows
from .project import (
    Progress, Project, declared_and_target, described, git_commit, look_up_desired, no_progress, pending_of,
    plan_files, unfinished_of, who,
)
from .results import DriftReport, MaintainResult, RepairResult, StatusReport
from .servers import Target, resolve_target

# What a command runs only sometimes (a build, migra, a change) is imported where it runs, so that a
# cached drift loads none of it.

def drift(project: Project, target: str | None = None, *, as_of: dt.date | None = None,
          use_cache: bool = True) -> DriftReport:
    """Compare the target with the declared files; changes nothing on the target or in migrations/ (the
    desired-state cache is refreshed). DriftReport.in_sync is the verdict."""
    config, desired, the_target = declared_and_target(project, target, as_of)
    entries, pending = pending_of(config, the_target)
    unfinished = unfinished_of(config, the_target, pending)
    compared = _compare(config, desired, the_target, use_cache)
    current_snapshot, declared_fingerprint = compared.target, compared.declared.fingerprint
    missing = missing_partitions(desired.partition_specs, desired.as_of, current_snapshot)
    with connected(the_target.url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        stranded = stranded_rows(cur, desired.partition_specs, desired.as_of, current_snapshot)
    fingerprint = current_snapshot.fingerprint
    last_after = entries[-1].fingerprint_after if entries else None
    return DriftReport(
        target=the_target.name,
        as_of=desired.as_of.isoformat(),
        fingerprint=fingerprint,
        declared_fingerprint=declared_fingerprint,
        declared_state="cached" if compared.cached else "built",
        last_applied_fingerprint=last_after,
        last_plan_applied_at=next((e.applied_at.astimezone(dt.timezone.utc).isoformat()
                                   for e in reversed(entries) if e.is_plan), None),
        # An apply that began and did not finish changed it: reconcile's own change, said as such.
        changed_outside_reconcile=last_after is not None and fingerprint != last_after and not unfinished,
        unfinished_applies=tuple(u.describe() for u in unfinished),
        pending_plans=tuple(p.name for p in pending),
        pending_plans_explain_differences=bool(pending) and pending[0].plan.fingerprint_before == fingerprint
        and pending[-1].plan.fingerprint_after == declared_fingerprint,
        missing_partitions=tuple(m.describe() for m in missing),
        stranded_rows=tuple(s.describe() for s in stranded),
        stranded_row_count=sum(s.rows for s in stranded),
        differences=classify(compared.differences, compared.target, compared.declared),
        fix_sql=compared.fix_sql,
        not_compared=not_compared(config.scope),
        lint_warnings=described(compared.findings),
        ignore=config.ignore,
    )



@dataclasses.dataclass(frozen=True)
class _Comparison:
    """The target against the declared state, as drift and maintain see it."""

    target: CatalogSnapshot
    declared: CatalogSnapshot
    differences: list[Difference]  # target first, declared second
    fix_sql: tuple[str, ...]  # migra's statements (with the corrections), when asked for
    findings: tuple  # the security lint's, on the declared state
    cached: bool  # answered from the desired-state cache: the target matched it exactly



def _compare(config: Config, desired: DesiredState, the_target: Target, use_cache: bool, *,
             fix_sql: bool = True) -> _Comparison:
    lookup = look_up_desired(config, desired, the_target, use_cache)
    if lookup.hit is not None:
        # The target matches the desired state cached for these exact declared files, as-of date,
        # server version and engine: nothing to build, nothing for migra to find.
        return _Comparison(lookup.target_snapshot, lookup.hit.snapshot, [], (), lookup.hit.lint_findings, True)
    from concurrent.futures import ThreadPoolExecutor

    from .rehearsal.proof import build_and_read, scratch_space_for
    from .scratch.databases import ScratchDatabase

    timeout = config.timeouts.connect_timeout_s
    with scratch_space_for(config, the_target) as server, ThreadPoolExecutor(max_workers=2) as beside, \
            ScratchDatabase(server, "desired", timeout) as scratch:
        current, wanted, findings = build_and_read(config, desired, the_target, scratch, beside,
                                                   lookup.target_snapshot)
        lookup.cache.put(lookup.key, wanted, findings)
        differences = current.differences(wanted)
        # The verdict is our snapshots' (as from the cache); migra is asked only for the SQL of a difference.
        statements = _fix_sql(config, desired, the_target, scratch, current, wanted, beside) if fix_sql and differences else ()
    return _Comparison(current, wanted, differences, statements, tuple(findings), False)


def _fix_sql(config: Config, desired: DesiredState, the_target: Target, scratch, current: CatalogSnapshot,
             wanted: CatalogSnapshot, beside) -> tuple[str, ...]:
    """migra's statements (with the corrections) from the target to the desired state built in `scratch`."""
    from .diff.migra_diff import diff
    from .diff.operations import DiffContext
    from .inspection.migra_view import inspect_database

    timeout = config.timeouts.connect_timeout_s
    target_view = beside.submit(inspect_database, the_target.url, config.scope, timeout, snapshot=current)
    desired_view = inspect_database(scratch.url, config.scope, timeout, snapshot=wanted)
    context = DiffContext.of(desired, config.batch_rows)
    return tuple(s.sql for s in diff(target_view.result(), desired_view, context, current_used_once=True).statements)



def maintain(project: Project, target: str | None = None, *, as_of: dt.date | None = None,
             on_progress: Progress = no_progress, use_cache: bool = True) -> MaintainResult:
    """For cron: create the current and upcoming declared partitions; additive only, no reviewed plan.

    Only on a target that matches the declared files but for the partitions the as-of date moves in or
    out of the window (compared as drift does; the desired-state cache spares the build while nothing
    changed); the fingerprint seen then is checked again under the apply lock before anything runs."""
    from .lifecycle.maintain import maintain_partitions

    config, desired, the_target = declared_and_target(project, target, as_of)
    _, pending = pending_of(config, the_target)
    if pending:
        raise PendingPlansError(
            f"{len(pending)} reviewed plan(s) are waiting to be applied ({', '.join(p.name for p in pending)}); "
            f"maintain changed nothing, so that they still apply: run 'reconcile apply' first"
        )
    on_progress("comparing the target with the declared files")
    compared = _compare(config, desired, the_target, use_cache, fix_sql=False)
    window = moved_by_the_window(desired.partition_specs, desired.as_of, compared.target)
    unexplained = [d for d in compared.differences
                   if window.isdisjoint(compared.target.belongs_to(d, compared.declared))]
    if unexplained:
        more = f" and {len(unexplained) - 1} more" if len(unexplained) > 1 else ""
        raise StalePlanError(
            f"{the_target.name} does not match the declared files ({unexplained[0].describe()}{more}): changed "
            f"outside reconcile, or declared changes not yet planned; maintain changed nothing: run "
            f"'reconcile drift' to see what differs"
        )
    result = maintain_partitions(config, the_target.url, desired.partition_specs, desired.as_of,
                                 verified_fingerprint=compared.target.fingerprint,
                                 applied_by=who(" (maintain)"), on_progress=on_progress)
    return dataclasses.replace(result, target=the_target.name)



def status(project: Project, target: str | None = None) -> StatusReport:
    """Which plans are applied to the target, which are pending, and which of those apply would refuse."""
    config = project.config
    the_target = resolve_target(config, target)
    entries, pending = pending_of(config, the_target)
    # Pending plans apply would refuse: edited since their rehearsal.
    unsealed = {p.name: problem for p in pending if (problem := p.seal_problem()) is not None}
    return StatusReport(the_target.name, tuple(entries), tuple(p.name for p in pending), unsealed,
                        config.migrations_dir, _data_steps_ran(config, the_target) if entries else {},
                        unfinished_of(config, the_target, pending))



def _data_steps_ran(config: Config, target: Target) -> dict[int, int] | None:
    """How many data steps each apply ran, by history id (None: unknown, see data_steps.counts_by_apply)."""
    from .deploy import data_steps

    with connected(target.url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        return data_steps.counts_by_apply(cur)



def repair(project: Project, target: str | None = None, *, plan: str | None = None, record: bool = False,
           use_cache: bool = True) -> RepairResult:
    """What an apply that began and did not finish left (the plan named, else the only such one), and how
    the target differs from the declared files; with record=True, that plan is recorded as applied with
    what it left, so that apply stops resuming it and the next plan starts from the truth. Raises
    NothingToRepairError when no apply began and stopped."""
    from .deploy.repair import repair_plan

    config = project.config
    the_target = resolve_target(config, target)
    left = repair_plan(config, the_target.url, plan_files(config), plan, record=record,
                       git_commit=git_commit(project.path), applied_by=who())
    desired = load_desired_state(config, config.today())
    compared = _compare(config, desired, the_target, use_cache, fix_sql=False)
    return RepairResult(the_target.name, left,
                        tuple(d.describe() for d in compared.differences))
