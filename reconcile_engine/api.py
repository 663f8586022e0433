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
The orchestration lives here (the commands that compare with the live target, drift, maintain,
status and repair, in api_live.py, re-exported; what every command reads of the project and the
target, in project.py); the stages do the work; nothing is printed (progress goes to `on_progress`,
when given).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
from collections.abc import Callable
from pathlib import Path

from .api_live import drift, maintain, repair, status
from .config import Config
from .declared.files import load_desired_state
from .errors import DeclaredStateError, PendingPlansError, PlanFileError, PlanNotConvergedError
from .project import (
    Progress, Project, declared_and_target, described, git_commit, load_project, look_up_desired, no_progress,
    pending_of, plan_files, who,
)
from .results import (
    ApplyResult, CheckReport, LintFinding, LintReport, NewProject, PlanResult, PolicyTestReport, PullResult,
    RollbackResult,
)
from .servers import resolve_target

# Each command imports the stages it runs where it runs them, so that a command loads only what it uses
# (a cached drift: neither migra nor the planner, the rehearsal or pull).

# The public API (re-exported by the package): every command, and the project they take.
__all__ = [
    "Project", "apply", "check", "drift", "init", "lint", "load_project", "maintain", "plan", "policy_tests", "pull",
    "rehearse", "repair", "rollback", "status",
]


def init(path: str | Path = ".", *, preset: str = "plain") -> NewProject:
    """Write a new project in `path`: the declared folders, migrations/, a commented reconcile.yaml for
    the preset ("plain" or "supabase"), and .reconcile/ in .gitignore. Raises ProjectExistsError, having
    written nothing, where a project (or part of one) exists."""
    from .declared.new_project import init_project

    return init_project(Path(path), preset)


def plan(project: Project, target: str | None = None, *, name: str = "plan", as_of: dt.date | None = None,
         write: bool = True, data_before=(), data_after=(), use_cache: bool = True,
         baseline: bool = False) -> PlanResult:
    """Diff the target against the declared files, rehearse the plan on a copy of the target (and its
    reverse on the declared state), and write it under migrations/ (unless write=False).

    baseline=True: no target; write migrations/baselines/<stamp>_baseline.sql, the declared state built
    from an empty database, proven equal to the replay of every plan under migrations/ (rehearsal/baseline.py)."""
    from .declared.data_steps import read_data_steps
    from .diff.migra_diff import diff
    from .diff.operations import DiffContext
    from .diff.scope import diff_on, relations_to_diff
    from .planning import planfile
    from .planning.build import build_plan
    from .planning.data_window import around_data_steps
    from .planning.online import make_online
    from .rehearsal.baseline import write_baseline
    from .rehearsal.proof import prove

    if baseline:
        made = write_baseline(project.config, _declared_as_of(project.config), project.migrations)
        return PlanResult("an empty database", made.plan, made.path)
    config, desired, the_target = declared_and_target(project, target, as_of)
    before_steps = read_data_steps(data_before, config, "before the schema changes")
    after_steps = read_data_steps(data_after, config, "after the schema changes")
    entries, pending = pending_of(config, the_target)
    if pending:
        raise PendingPlansError(
            f"{len(pending)} plan(s) in {config.migrations_dir}/ not yet applied to {the_target.name} "
            f"({', '.join(p.name for p in pending)}): apply them first, or delete them if they are abandoned"
        )
    last_after = entries[-1].fingerprint_after if entries else None
    lookup = look_up_desired(config, desired, the_target, use_cache)
    if lookup.hit is not None and not before_steps and not after_steps:
        return PlanResult(the_target.name, None, lint_warnings=described(lookup.hit.lint_findings),
                          declared_state="cached", changed_since_last_apply=last_after is not None
                          and lookup.target_snapshot.fingerprint != last_after, ignore=config.ignore)

    scoped = []  # each plan made: whether from a diff kept to the relations that differ (diff/scope.py)

    def make_plan(current, wanted, whole=False):
        differences = current.snapshot.differences(wanted.snapshot)
        context = DiffContext.of(desired, config.batch_rows)
        # Nothing differs for the snapshot: only the whole diff can show what migra alone sees.
        kept = None if whole or not differences else relations_to_diff(current.snapshot, wanted.snapshot, differences)
        scoped.append(kept is not None)
        # Whole: views read without some relations (proof.read_views) are read again whole.
        changes = diff(current.whole(), wanted.whole(), context) if kept is None else diff_on(kept, current, wanted, context)
        if changes.empty and not differences and not before_steps and not after_steps:
            return None
        changes = around_data_steps(changes, before_steps, after_steps, current.snapshot)
        the_plan = build_plan(changes, current.snapshot, wanted.snapshot, desired.as_of)
        if config.online and current.snapshot.of_kind("table"):
            return make_online(the_plan, current.snapshot)
        return the_plan

    try:
        proof = prove(config, desired, the_target, make_plan, renames=desired.renames(),
                      target_now=lookup.target_snapshot, declared_fingerprint=lookup.declared_fingerprint)
    except PlanNotConvergedError:
        if not any(scoped):
            raise
        # Made on the relations that differ, it did not reach the declared state: made again, whole
        # (from the target as it is by then).
        proof = prove(config, desired, the_target, functools.partial(make_plan, whole=True), renames=desired.renames())
    lookup.cache.put(lookup.key, proof.declared, proof.findings)
    warnings = described(proof.findings) + proof.notes
    if proof.plan is None:  # the target is the declared state: its fingerprint is the declared one
        return PlanResult(the_target.name, None, lint_warnings=warnings, changed_since_last_apply=last_after
                          is not None and proof.declared.fingerprint != last_after, ignore=config.ignore)
    path = rollback = None
    if write:
        path = planfile.write(proof.plan, project.migrations, name)
        if proof.reverse is not None:
            rollback = planfile.write_rollback(proof.reverse, project.migrations, path.name)
    return PlanResult(the_target.name, proof.plan, path, rollback, warnings)


def check(project: Project, *, use_cache: bool = True) -> CheckReport:
    """The CI gate of a pull request, without the target: replay the committed plans on a scratch
    server (from the newest baseline), compare with the declared state, and check the plans' seals,
    order and bases, squawk and the security lint. CheckReport.ok is the verdict."""
    from .rehearsal import replay

    return replay.check(project.config, _declared_as_of(project.config), use_cache)


def _declared_as_of(config: Config) -> Callable:
    """The declared state as of a date (None: today, in the config's calendar)."""
    return lambda as_of: load_desired_state(config, as_of or config.today())


def rehearse(project: Project, plan_file: str | Path, target: str | None = None) -> PlanResult:
    """Rehearse a plan file as it is now (edited by hand, say) and, when it reaches the declared state,
    rewrite its header (summary, hazards, fingerprints, checksum) and its rollback plan."""
    from .deploy import history
    from .planning import planfile
    from .planning.build import replan
    from .rehearsal.proof import prove

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
    entries, pending = pending_of(config, the_target)
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
                      described(proof.findings), approval_reset=reset)


def apply(project: Project, target: str | None = None, *, allow_destructive: bool = False,
          rerun_data_steps: bool = False, on_progress: Progress = no_progress) -> ApplyResult:
    """Apply every pending plan under migrations/, each in its own transaction, under the advisory lock.
    A data step recorded as run by an earlier apply of the same plan (since rolled back) is skipped
    (result.skipped_data_steps), unless rerun_data_steps."""
    from .deploy.apply import apply_plans

    config = project.config
    the_target = resolve_target(config, target)
    result = apply_plans(config, the_target.url, plan_files(config), allow_destructive=allow_destructive,
                         git_commit=git_commit(project.path), applied_by=who(), on_progress=on_progress,
                         rerun_data_steps=rerun_data_steps)
    return dataclasses.replace(result, target=the_target.name)


def rollback(project: Project, target: str | None = None, *, allow_destructive: bool = False,
             on_progress: Progress = no_progress) -> RollbackResult:
    """Apply the rehearsed reverse of the last applied plan (refused if the database moved on since,
    but for partitions 'maintain' made: then the reverse is rehearsed again on a copy of the target)."""
    from .deploy.rollback import rollback_last
    from .rehearsal.rollback_rehearsal import rehearse_on_target_copy

    config = project.config
    the_target = resolve_target(config, target)
    done = rollback_last(config, the_target.url, project.migrations, allow_destructive=allow_destructive,
                         git_commit=git_commit(project.path), applied_by=who(), on_progress=on_progress,
                         rehearse_after_maintain=lambda reverse, label: rehearse_on_target_copy(
                             config, the_target, reverse, label))
    return RollbackResult(the_target.name, done, config.migrations_dir)


def policy_tests(project: Project, target: str | None = None, *, as_of: dt.date | None = None) -> PolicyTestReport:
    """Policy tests (policies/tests/*.yaml) on the declared state, on a server where creating the
    test's role harms nothing: scratch.server_url, else an embedded server (never the target's).
    With a target (`target`, $DATABASE_URL or database_url), the declared state is built as it
    would be there: its external schemas, the deploy role's default privileges and the target's
    grants; without one, external schemas come from external/<schema>.sql."""
    from .checks.policy_tests import read_tests, run_tests
    from .scratch.apart import server_apart
    from .scratch.databases import ScratchDatabase
    from .scratch.target_environment import read_target_environment, without_target

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
    timeout = config.timeouts.connect_timeout_s
    with server_apart(config, environment, "test-pgdata") as server, \
            ScratchDatabase(server, "policytests", timeout) as scratch:
        scratch.prepare(config)
        scratch.load_desired(desired)
        builder = server.builder.name if server.builder else None
        return PolicyTestReport(tuple(run_tests(scratch.url, server.admin_url, builder, test_files)))


def lint(project: Project, plan_files=(), target: str | None = None, *, as_of: dt.date | None = None,
         database: bool = True) -> LintReport:
    """With plan files: squawk on them. Without: the security rules on the declared state, and squawk
    on every plan under migrations/. database=False (a pre-commit hook): no connection at all; the
    declared files are admitted as plan admits them (RefusedStatementError naming file:line) instead
    of being built and checked by the security rules."""
    from .checks.squawk import squawk
    from .planning import planfile
    from .rehearsal.proof import desired_database, lint_findings

    config = project.config
    paths = [Path(p) for p in plan_files] or planfile.list_plans(project.migrations)
    findings: list[LintFinding] = []
    if not plan_files:
        desired = load_desired_state(config, as_of or config.today())
        desired.admit()
    if not plan_files and database:
        with desired_database(config, desired, resolve_target(config, target)) as scratch:
            findings += [LintFinding("declared state", f.rule, f.message, object=f.object)
                         for f in lint_findings(config, scratch)]
    for path in paths:
        findings += [LintFinding(str(path), f.rule, f.message, statement=f.statement, help=f.help)
                     for f in squawk(planfile.read(path).plan.statements)]
    return LintReport(tuple(findings), tuple(str(p) for p in paths), declared_state_checked=not plan_files and database,
                      declared_files_admitted=not plan_files)


def pull(project: Project, target: str | None = None, *, force: bool = False,
         as_of: dt.date | None = None) -> PullResult:
    """Write the project's declared files from the target's schema (adopting an existing database), so
    that `plan` then finds no changes and `drift` reports in sync. Partitions that a spec makes as of
    `as_of` (today by default) become partitions/<table>.yaml. Raises PullConflictError, changing
    nothing, where declared files that hold something else exist, unless force=True (overwrite them,
    and remove the declared files pull did not write)."""
    from .adoption.pull import pull_schema

    config = project.config
    as_of = as_of or config.today()
    the_target = resolve_target(config, target)
    pulled = pull_schema(config, the_target.url, as_of, force)
    files = pulled.files
    return PullResult(the_target.name, as_of.isoformat(), files.written, files.unchanged, files.removed,
                      pulled.extensions, tuple(e for e in pulled.extensions if e not in config.extensions),
                      pulled.notes)
