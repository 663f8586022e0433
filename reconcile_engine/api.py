"""The public API: one plain function per command, each returning a typed result (results.py).

    import reconcile_engine as reconcile

    project = reconcile.load_project("path/to/project")
    result = reconcile.plan(project, "postgresql://deploy@db/app", name="add_display_name")
    if result.changes:
        reconcile.apply(project, "postgresql://deploy@db/app")
    assert reconcile.drift(project, "postgresql://deploy@db/app").in_sync

`target` is a database URL; None means what the command line uses: $DATABASE_URL, then
reconcile.yaml's database_url, then the embedded server under the project's .reconcile/.
Every failure whose cause is known raises a ReconcileError subclass (errors.py), one per meaning.
The orchestration lives here; the stages do the work; nothing is printed (progress goes to
`on_progress`, when given).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import os
import socket
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .adoption.pull import pull_schema
from .checks.policy_tests import read_tests, run_tests
from .checks.squawk import squawk
from .config import Config, load_config
from .connections import connected
from .declared.data_steps import read_data_steps
from .declared.files import DesiredState, load_desired_state
from .declared.inference import with_inferred
from .declared.new_project import NewProject, init_project
from .deploy import data_steps, history
from .deploy.apply import ApplyResult, apply_plans, pending_plans
from .deploy.repair import repair_plan
from .deploy.rollback import rollback_last
from .deploy.unfinished import UnfinishedApply, unfinished_applies
from .diff.migra_diff import diff
from .diff.operations import DiffContext
from .errors import DeclaredStateError, PendingPlansError, PlanFileError, StalePlanError
from .inspection.security_drift import classify
from .inspection.snapshot import CatalogSnapshot, Difference, not_compared, read_snapshot
from .lifecycle.maintain import MaintainResult, maintain_partitions
from .lifecycle.windows import missing_partitions, moved_by_the_window, stranded_rows
from .planning import planfile
from .planning.build import build_plan, replan
from .planning.data_window import around_data_steps
from .planning.online import make_online
from .rehearsal.rollback_rehearsal import rehearse_on_target_copy
from .rehearsal.proof import build_and_inspect, desired_database, lint_findings, prove, scratch_space_for
from .results import (
    DriftReport, LintFinding, LintReport, PlanResult, PolicyTestReport, PullResult, RepairResult, RollbackResult,
    StatusReport,
)
from .scratch.databases import ScratchDatabase, ScratchServer, build_role_on
from .scratch.desired_cache import CachedDesiredState, DesiredStateCache, cache_key, scratch_server_version
from .scratch.target_environment import privileges_digest, read_target_environment, without_target
from .servers import EmbeddedServer, Target, embedded_data_dir, resolve_target

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Project:
    """A project folder and its reconcile.yaml, read and checked."""

    config: Config

    @property
    def path(self) -> Path:
        return self.config.project_dir

    @property
    def migrations(self) -> Path:
        return self.config.path(self.config.migrations_dir)

    def writing_to(self, migrations: Path, work: Path) -> "Project":
        """The same project with its plan files written to `migrations` and the engine's own data (the
        embedded server, the desired-state cache) kept in `work`: for a caller that must leave the
        project's folders as they are, such as the pytest plugin."""
        return Project(dataclasses.replace(self.config, migrations_dir=Path(migrations), embedded_dir=Path(work)))


def load_project(path: str | Path = ".", config_file: str | Path | None = None) -> Project:
    """Read the project's reconcile.yaml (or `config_file`), with what its declared files create or name
    (declared/inference.py); raises ConfigError when it is wrong, RefusedStatementError when a declared
    statement is refused."""
    return Project(with_inferred(load_config(Path(path), Path(config_file) if config_file else None)))


def init(path: str | Path = ".", *, preset: str = "plain") -> NewProject:
    """Write a new project in `path`: the declared folders, migrations/, a commented reconcile.yaml for
    the preset ("plain" or "supabase"), and .reconcile/ in .gitignore. Raises ProjectExistsError, having
    written nothing, where a project (or part of one) exists."""
    return init_project(Path(path), preset)


def _no_progress(message: str) -> None:
    pass


def _who(suffix: str = "") -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}{suffix}"


def _git_commit(project: Path) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _plan_files(config: Config) -> list[planfile.PlanFile]:
    return [planfile.read(path) for path in planfile.list_plans(config.path(config.migrations_dir))]


def _history(config: Config, target: Target) -> list[history.HistoryEntry]:
    with connected(target.url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        return history.read(cur)


def _pending(config: Config, target: Target) -> tuple[list[history.HistoryEntry], list[planfile.PlanFile]]:
    entries = _history(config, target)
    return entries, pending_plans(_plan_files(config), history.applied_plan_names(entries))


def _unfinished(config: Config, target: Target, plans: list[planfile.PlanFile]) -> tuple[UnfinishedApply, ...]:
    with connected(target.url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        return unfinished_applies(cur, plans)


def _declared_and_target(project: Project, target: str | None, as_of: dt.date | None):
    """The project's config, its declared state as of the date (by default today, in the config's
    calendar: see Config.today), and the target."""
    config = project.config
    return config, load_desired_state(config, as_of or config.today()), resolve_target(config, target)


@dataclasses.dataclass(frozen=True)
class _CacheLookup:
    cache: DesiredStateCache
    key: str
    hit: CachedDesiredState | None  # set only when the target matches the cached desired state exactly
    target_snapshot: CatalogSnapshot | None = None


def _look_up_desired(config: Config, desired: DesiredState, target: Target, use_cache: bool) -> _CacheLookup:
    """A cached desired state saves building one only when the target already matches it: any
    difference needs the desired database for migra's statements, so then it is built."""
    cache = DesiredStateCache.for_project(config)
    key = cache_key(desired, config, scratch_server_version(config, target), privileges_digest(config, target.url))
    cached = cache.get(key) if use_cache else None
    if cached is not None:
        current = read_snapshot(target.url, config.scope, config.timeouts.connect_timeout_s)
        if not current.differences(cached.snapshot):
            return _CacheLookup(cache, key, cached, current)
    desired.admit()  # the declared state will be built: nothing of it runs unless admitted
    return _CacheLookup(cache, key, None)


def plan(project: Project, target: str | None = None, *, name: str = "plan", as_of: dt.date | None = None,
         write: bool = True, data_before=(), data_after=(), use_cache: bool = True) -> PlanResult:
    """Diff the target against the declared files, rehearse the plan on a copy of the target (and its
    reverse on the declared state), and write it under migrations/ (unless write=False)."""
    config, desired, the_target = _declared_and_target(project, target, as_of)
    before_steps = read_data_steps(data_before, config, "before the schema changes")
    after_steps = read_data_steps(data_after, config, "after the schema changes")
    entries, pending = _pending(config, the_target)
    if pending:
        raise PendingPlansError(
            f"{len(pending)} plan(s) in {config.migrations_dir}/ not yet applied to {the_target.name} "
            f"({', '.join(p.name for p in pending)}): apply them first, or delete them if they are abandoned"
        )
    last_after = entries[-1].fingerprint_after if entries else None
    lookup = _look_up_desired(config, desired, the_target, use_cache)
    if lookup.hit is not None and not before_steps and not after_steps:
        return PlanResult(the_target.name, None, lint_warnings=_described(lookup.hit.lint_findings),
                          declared_state="cached", changed_since_last_apply=last_after is not None
                          and lookup.target_snapshot.fingerprint != last_after, ignore=config.ignore)

    def make_plan(current, wanted):
        differences = current.snapshot.differences(wanted.snapshot)
        changes = diff(current, wanted, DiffContext(desired.partition_specs, config.batch_rows, desired.usings()))
        if changes.empty and not differences and not before_steps and not after_steps:
            return None
        changes = around_data_steps(changes, before_steps, after_steps, current.snapshot)
        the_plan = build_plan(changes, current.snapshot, wanted.snapshot, desired.as_of)
        if config.online and current.snapshot.of_kind("table"):
            return make_online(the_plan, current.snapshot)
        return the_plan

    proof = prove(config, desired, the_target, make_plan, renames=desired.renames())
    lookup.cache.put(lookup.key, proof.declared, proof.findings)
    warnings = _described(proof.findings) + proof.notes
    if proof.plan is None:  # the target is the declared state: its fingerprint is the declared one
        return PlanResult(the_target.name, None, lint_warnings=warnings, changed_since_last_apply=last_after
                          is not None and proof.declared.fingerprint != last_after, ignore=config.ignore)
    path = rollback = None
    if write:
        path = planfile.write(proof.plan, project.migrations, name)
        if proof.reverse is not None:
            rollback = planfile.write_rollback(proof.reverse, project.migrations, path.name)
    return PlanResult(the_target.name, proof.plan, path, rollback, warnings)


def _described(findings) -> tuple[str, ...]:
    return tuple(finding.describe() for finding in findings)


def rehearse(project: Project, plan_file: str | Path, target: str | None = None) -> PlanResult:
    """Rehearse a plan file as it is now (edited by hand, say) and, when it reaches the declared state,
    rewrite its header (summary, hazards, fingerprints, checksum) and its rollback plan."""
    config = project.config
    path = Path(plan_file)
    path = (project.path / path).resolve() if not path.is_absolute() else path.resolve()
    shown = f"{config.migrations_dir}/{path.name}"
    if path.parent == project.migrations / planfile.ROLLBACK_FOLDER:
        raise PlanFileError(f"{config.migrations_dir}/{planfile.ROLLBACK_FOLDER}/{path.name}: a rollback plan is "
                            f"rehearsed with its plan: run 'reconcile rehearse {shown}' before that plan is applied")
    if path.parent != project.migrations or path.suffix != ".sql":
        raise PlanFileError(f"{path}: not a plan file in {config.migrations_dir}/")
    edited = planfile.read(path)
    the_target = resolve_target(config, target)
    entries, pending = _pending(config, the_target)
    if edited.name in history.applied_plan_names(entries):
        raise PlanFileError(f"{shown}: already applied to {the_target.name}; a rehearsal proves a plan before it runs")
    earlier = [p.name for p in pending if p.name < edited.name]
    if earlier:
        raise PendingPlansError(f"{shown} starts where {earlier[-1]} ends, which is not applied to {the_target.name} "
                                f"yet: apply the plans before it first")
    unchanged = edited.seal_problem() is None
    desired = load_desired_state(config, edited.plan.as_of)
    desired.admit()

    def make_plan(current, wanted):
        return replan(edited.plan, current.snapshot, wanted.snapshot)

    proof = prove(config, desired, the_target, make_plan)
    # The reviewer's approval stands only for the statements it was given for.
    the_plan = dataclasses.replace(proof.plan, created_at=edited.plan.created_at,
                                   destructive_approved=edited.plan.destructive_approved and unchanged)
    planfile.rewrite(the_plan, path)
    rollback = planfile.rollback_path(project.migrations, path.name)
    if proof.reverse is not None:
        planfile.write_rollback(proof.reverse, project.migrations, path.name)
    elif rollback.exists():
        rollback.unlink()  # it was the reverse of the plan before the edit
    reset = edited.plan.destructive_approved and not unchanged and bool(the_plan.destructive)
    return PlanResult(the_target.name, the_plan, path, rollback if proof.reverse is not None else None,
                      _described(proof.findings), approval_reset=reset)


def apply(project: Project, target: str | None = None, *, allow_destructive: bool = False,
          rerun_data_steps: bool = False, on_progress: Progress = _no_progress) -> ApplyResult:
    """Apply every pending plan under migrations/, each in its own transaction, under the advisory lock.
    A data step recorded as run by an earlier apply of the same plan (since rolled back) is skipped
    (result.skipped_data_steps), unless rerun_data_steps."""
    config = project.config
    the_target = resolve_target(config, target)
    result = apply_plans(config, the_target.url, _plan_files(config), allow_destructive=allow_destructive,
                         git_commit=_git_commit(project.path), applied_by=_who(), on_progress=on_progress,
                         rerun_data_steps=rerun_data_steps)
    return dataclasses.replace(result, target=the_target.name)


def rollback(project: Project, target: str | None = None, *, allow_destructive: bool = False,
             on_progress: Progress = _no_progress) -> RollbackResult:
    """Apply the rehearsed reverse of the last applied plan (refused if the database moved on since,
    but for partitions 'maintain' made: then the reverse is rehearsed again on a copy of the target)."""
    config = project.config
    the_target = resolve_target(config, target)
    done = rollback_last(config, the_target.url, project.migrations, allow_destructive=allow_destructive,
                         git_commit=_git_commit(project.path), applied_by=_who(), on_progress=on_progress,
                         rehearse_after_maintain=lambda reverse, label: rehearse_on_target_copy(
                             config, the_target, reverse, label))
    return RollbackResult(the_target.name, done, config.migrations_dir)


def repair(project: Project, target: str | None = None, *, plan: str | None = None, record: bool = False,
           use_cache: bool = True) -> RepairResult:
    """What an apply that began and did not finish left (the plan named, else the only such one), and how
    the target differs from the declared files; with record=True, that plan is recorded as applied with
    what it left, so that apply stops resuming it and the next plan starts from the truth. Raises
    NothingToRepairError when no apply began and stopped."""
    config = project.config
    the_target = resolve_target(config, target)
    left = repair_plan(config, the_target.url, _plan_files(config), plan, record=record,
                       git_commit=_git_commit(project.path), applied_by=_who())
    desired = load_desired_state(config, config.today())
    compared = _compare(config, desired, the_target, use_cache, fix_sql=False)
    return RepairResult(the_target.name, left,
                        tuple(d.describe() for d in compared.differences))


def policy_tests(project: Project, target: str | None = None, *, as_of: dt.date | None = None) -> PolicyTestReport:
    """Policy tests (policies/tests/*.yaml) on the declared state, on a server where creating the
    test's role harms nothing: scratch.server_url, else an embedded server (never the target's).
    With a target (`target`, $DATABASE_URL or database_url), the declared state is built as it
    would be there: its external schemas, the deploy role's default privileges and the target's
    grants; without one, external schemas come from external/<schema>.sql."""
    config = project.config
    explicit = target or os.environ.get("DATABASE_URL") or config.database_url
    environment = read_target_environment(config, resolve_target(config, explicit).url) if explicit \
        else without_target(config)
    as_of = as_of or config.today()
    test_files = read_tests(config.project_dir, as_of)
    if not test_files:
        raise DeclaredStateError(f"no policy tests: add YAML files under {config.project_dir / 'policies' / 'tests'}")
    desired = load_desired_state(config, as_of)
    desired.admit()
    embedded = None
    if config.scratch_mode == "server":
        server = ScratchServer(config.scratch_server_url, False, environment=environment)
    else:
        embedded = EmbeddedServer.start(embedded_data_dir(config).parent / "test-pgdata")
        server = ScratchServer(embedded.url("postgres"), False, embedded, environment=environment)
    timeout = config.timeouts.connect_timeout_s
    try:
        with build_role_on(server, timeout) as server, ScratchDatabase(server, "policytests", timeout) as scratch:
            scratch.prepare(config)
            scratch.load_desired(desired)
            builder = server.builder.name if server.builder else None
            return PolicyTestReport(tuple(run_tests(scratch.url, server.admin_url, builder, test_files)))
    finally:
        if embedded is not None:
            embedded.stop()  # a library caller's process goes on: not left running until it exits


def drift(project: Project, target: str | None = None, *, as_of: dt.date | None = None,
          use_cache: bool = True) -> DriftReport:
    """Compare the target with the declared files; changes nothing on the target or in migrations/ (the
    desired-state cache is refreshed). DriftReport.in_sync is the verdict."""
    config, desired, the_target = _declared_and_target(project, target, as_of)
    entries, pending = _pending(config, the_target)
    unfinished = _unfinished(config, the_target, pending)
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
        # An apply that began and did not finish changed it: reconcile's own change, said as such.
        changed_outside_reconcile=last_after is not None and fingerprint != last_after and not unfinished,
        unfinished_applies=tuple(u.describe() for u in unfinished),
        pending_plans=tuple(p.name for p in pending),
        pending_plans_explain_differences=bool(pending) and pending[0].plan.fingerprint_before == fingerprint
        and pending[-1].plan.fingerprint_after == declared_fingerprint,
        missing_partitions=tuple(m.describe() for m in missing),
        stranded_rows=tuple(s.describe() for s in stranded),
        differences=classify(compared.differences, compared.target, compared.declared),
        fix_sql=compared.fix_sql,
        not_compared=not_compared(config.scope),
        lint_warnings=_described(compared.findings),
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
    lookup = _look_up_desired(config, desired, the_target, use_cache)
    if lookup.hit is not None:
        # The target matches the desired state cached for these exact declared files, as-of date,
        # server version and engine: nothing to build, nothing for migra to find.
        return _Comparison(lookup.target_snapshot, lookup.hit.snapshot, [], (), lookup.hit.lint_findings, True)
    with scratch_space_for(config, the_target) as server, ThreadPoolExecutor(max_workers=1) as beside, \
            ScratchDatabase(server, "desired", config.timeouts.connect_timeout_s) as scratch:
        current, wanted, findings = build_and_inspect(config, desired, the_target, scratch, beside)
        lookup.cache.put(lookup.key, wanted.snapshot, findings)
        statements = diff(current, wanted, DiffContext(desired.partition_specs, config.batch_rows, desired.usings())).statements if fix_sql else ()
    return _Comparison(current.snapshot, wanted.snapshot, current.snapshot.differences(wanted.snapshot),
                       tuple(s.sql for s in statements), tuple(findings), False)


def maintain(project: Project, target: str | None = None, *, as_of: dt.date | None = None,
             on_progress: Progress = _no_progress, use_cache: bool = True) -> MaintainResult:
    """For cron: create the current and upcoming declared partitions; additive only, no reviewed plan.

    Only on a target that matches the declared files but for the partitions the as-of date moves in or
    out of the window (compared as drift does; the desired-state cache spares the build while nothing
    changed); the fingerprint seen then is checked again under the apply lock before anything runs."""
    config, desired, the_target = _declared_and_target(project, target, as_of)
    _, pending = _pending(config, the_target)
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
                                 applied_by=_who(" (maintain)"), on_progress=on_progress)
    return dataclasses.replace(result, target=the_target.name)


def lint(project: Project, plan_files=(), target: str | None = None, *, as_of: dt.date | None = None) -> LintReport:
    """With plan files: squawk on them. Without: the security rules on the declared state, and squawk
    on every plan under migrations/."""
    config = project.config
    paths = [Path(p) for p in plan_files] or planfile.list_plans(project.migrations)
    findings: list[LintFinding] = []
    if not plan_files:
        desired = load_desired_state(config, as_of or config.today())
        desired.admit()
        with desired_database(config, desired, resolve_target(config, target)) as scratch:
            findings += [LintFinding("declared state", f.rule, f.message, object=f.object)
                         for f in lint_findings(config, scratch)]
    for path in paths:
        findings += [LintFinding(str(path), f.rule, f.message, statement=f.statement, help=f.help)
                     for f in squawk(planfile.read(path).plan.statements)]
    return LintReport(tuple(findings), tuple(str(p) for p in paths), declared_state_checked=not plan_files)


def status(project: Project, target: str | None = None) -> StatusReport:
    """Which plans are applied to the target, which are pending, and which of those apply would refuse."""
    config = project.config
    the_target = resolve_target(config, target)
    entries, pending = _pending(config, the_target)
    # Pending plans apply would refuse: edited since their rehearsal.
    unsealed = {p.name: problem for p in pending if (problem := p.seal_problem()) is not None}
    return StatusReport(the_target.name, tuple(entries), tuple(p.name for p in pending), unsealed,
                        config.migrations_dir, _data_steps_ran(config, the_target) if entries else {},
                        _unfinished(config, the_target, pending))


def _data_steps_ran(config: Config, target: Target) -> dict[int, int] | None:
    """How many data steps each apply ran, by history id (None: unknown, see data_steps.counts_by_apply)."""
    with connected(target.url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        return data_steps.counts_by_apply(cur)


def pull(project: Project, target: str | None = None, *, force: bool = False,
         as_of: dt.date | None = None) -> PullResult:
    """Write the project's declared files from the target's schema (adopting an existing database), so
    that `plan` then finds no changes and `drift` reports in sync. Partitions that a spec makes as of
    `as_of` (today by default) become partitions/<table>.yaml. Raises PullConflictError, changing
    nothing, where declared files that hold something else exist, unless force=True (overwrite them,
    and remove the declared files pull did not write)."""
    config = project.config
    as_of = as_of or config.today()
    the_target = resolve_target(config, target)
    pulled = pull_schema(config, the_target.url, as_of, force)
    files = pulled.files
    return PullResult(the_target.name, as_of.isoformat(), files.written, files.unchanged, files.removed,
                      pulled.extensions, tuple(e for e in pulled.extensions if e not in config.extensions),
                      pulled.notes)
