"""The commands: plain functions taking Options (argument parsing is wired separately, in cli.py).

Each returns an exit code; each raises a ReconcileError subclass where the fault is known.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import getpass
import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .deploy import history
from .planning import planfile
from .deploy.apply import apply_plans, pending_plans
from .lifecycle.maintain import maintain_partitions
from .deploy.rollback import rollback_last
from .config import Config, load_config
from .declared.files import DesiredState, load_desired_state
from .diff.operations import DiffContext, DiffStatement
from .diff.migra_diff import diff
from .errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, DeclaredStateError, PendingPlansError, PlanFileError
from .scratch.desired_cache import CachedDesiredState, DesiredStateCache, cache_key, scratch_server_version
from .inspection.snapshot import CatalogSnapshot, not_compared, read_snapshot
from .lifecycle.windows import missing_partitions, stranded_rows
from .checks.squawk import squawk
from .planning.online import make_online
from .planning.build import build_plan, replan
from .rehearsal.proof import build_and_inspect, desired_database, lint_findings, prove, scratch_space_for
from .scratch.databases import ScratchDatabase
from .servers import Target, resolve_target
from .connections import connect


@dataclasses.dataclass(frozen=True)
class Options:
    project: Path
    config_file: Path | None = None
    database_url: str | None = None
    as_of: dt.date | None = None
    format: str = "text"
    use_cache: bool = True  # False: build the desired state even when a cached one matches


def _print(text: str = "") -> None:
    print(text, flush=True)


def _setup(options: Options) -> tuple[Config, DesiredState, Target]:
    config = load_config(options.project, options.config_file)
    desired = load_desired_state(config, options.as_of or dt.date.today())
    return config, desired, resolve_target(config, options.database_url)


def _print_lint_warnings(findings) -> None:
    for finding in findings:
        print(f"warning: {finding.describe()}", file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class _CacheLookup:
    cache: DesiredStateCache
    key: str
    hit: CachedDesiredState | None  # set only when the target matches the cached desired state exactly
    target_snapshot: CatalogSnapshot | None = None


def _look_up_desired(config: Config, desired: DesiredState, target: Target, options: Options) -> _CacheLookup:
    """A cached desired state saves building one only when the target already matches it: any
    difference needs the desired database for migra's statements, so then it is built."""
    cache = DesiredStateCache.for_project(config)
    key = cache_key(desired, config, scratch_server_version(config, target))
    cached = cache.get(key) if options.use_cache else None
    if cached is not None:
        current = read_snapshot(target.url, config.scope, config.timeouts.connect_timeout_s)
        if not current.differences(cached.snapshot):
            return _CacheLookup(cache, key, cached, current)
    desired.admit()  # the declared state will be built: nothing of it runs unless admitted
    return _CacheLookup(cache, key, None)


def _plan_files(config: Config) -> list[planfile.PlanFile]:
    return [planfile.read(path) for path in planfile.list_plans(config.path(config.migrations_dir))]


def _history(config: Config, target: Target) -> list[history.HistoryEntry]:
    conn = connect(target.url, config.timeouts.connect_timeout_s)
    try:
        with conn.cursor() as cur:
            return history.read(cur)
    finally:
        conn.close()


def _data_steps(paths, config: Config, where: str) -> list[DiffStatement]:
    """Hand-written data statements (e.g. a jsonb_set UPDATE) to run before or after the generated DDL."""
    from pglast import parser as pg_parser

    steps = []
    for path in paths or ():
        display = str(path)
        try:
            text = Path(config.project_dir, path).read_text(encoding="utf-8")
            slices = pg_parser.split(text, with_parser=True, only_slices=True)
        except OSError as exc:
            raise DeclaredStateError(f"{display}: cannot read the data step: {exc.strerror}") from exc
        except pg_parser.ParseError as exc:
            line = text.count("\n", 0, exc.args[1]) + 1 if len(exc.args) > 1 else "?"
            raise DeclaredStateError(f"{display}:{line}: {exc.args[0]}") from exc
        steps += [DiffStatement(text[piece].strip(), f"data ({where}, from {display})") for piece in slices]
    return steps


def plan(options: Options, *, name: str = "plan", dry_run: bool = False, detailed_exitcode: bool = False,
         data_before=(), data_after=()) -> int:
    config, desired, target = _setup(options)
    before_steps = _data_steps(data_before, config, "before the schema changes")
    after_steps = _data_steps(data_after, config, "after the schema changes")
    plans = _plan_files(config)
    pending = pending_plans(plans, history.applied_plan_names(_history(config, target)))
    if pending:
        raise PendingPlansError(
            f"{len(pending)} plan(s) in {config.migrations_dir}/ not yet applied to {target.name} "
            f"({', '.join(p.name for p in pending)}): apply them first, or delete them if they are abandoned"
        )
    lookup = _look_up_desired(config, desired, target, options)
    if lookup.hit is not None and not before_steps and not after_steps:
        _print_lint_warnings(lookup.hit.lint_findings)
        _emit_no_changes(options)
        return EXIT_OK

    def make_plan(current, wanted):
        differences = current.snapshot.differences(wanted.snapshot)
        changes = diff(current, wanted, DiffContext(desired.partition_specs))
        if changes.empty and not differences and not before_steps and not after_steps:
            return None
        if before_steps or after_steps:
            changes = dataclasses.replace(changes, statements=tuple(before_steps) + changes.statements + tuple(after_steps))
        plan_of = functools.partial(build_plan, changes, current.snapshot, wanted.snapshot, desired.as_of)
        if config.online and current.snapshot.of_kind("table"):
            # Going online rewrites statements by what they do: classified first.
            return make_online(plan_of(), current.snapshot), None
        return plan_of(classified=False), plan_of

    proof = prove(config, desired, target, make_plan)
    lookup.cache.put(lookup.key, proof.declared, proof.findings)
    _print_lint_warnings(proof.findings)
    if proof.plan is None:
        _emit_no_changes(options)
        return EXIT_OK
    migrations = config.path(config.migrations_dir)
    path = None if dry_run else planfile.write(proof.plan, migrations, name)
    if path is not None and proof.reverse is not None:
        planfile.write_rollback(proof.reverse, migrations, path.name)
    _emit_plan(options, config, target, proof.plan, path, "wrote")
    return EXIT_CHANGES if detailed_exitcode else EXIT_OK


def _emit_plan(options: Options, config: Config, target: Target, the_plan, path: Path | None, written: str) -> None:
    if options.format == "json":
        payload = the_plan.to_dict() | {"file": str(path) if path else None, "rehearsed": True}
        _print(json.dumps(payload, indent=2))
    else:
        _print(planfile.render(the_plan))
        _print(f"-- rehearsed on a copy of {target.name}: converged")
        _print(f"-- {written} {path.relative_to(config.project_dir) if path else 'nothing (--dry-run)'}")


def rehearse_plan(options: Options, path: Path) -> int:
    """Rehearse a plan file as it is now (edited by hand, say) and, when it reaches the declared state,
    rewrite its header (summary, hazards, fingerprints, checksum) and its rollback plan."""
    config = load_config(options.project, options.config_file)
    migrations = config.path(config.migrations_dir)
    path = (options.project / path).resolve() if not path.is_absolute() else path.resolve()
    shown = f"{config.migrations_dir}/{path.name}"
    if path.parent == migrations / planfile.ROLLBACK_FOLDER:
        raise PlanFileError(f"{config.migrations_dir}/{planfile.ROLLBACK_FOLDER}/{path.name}: a rollback plan is "
                            f"rehearsed with its plan: run 'reconcile rehearse {shown}' before that plan is applied")
    if path.parent != migrations or path.suffix != ".sql":
        raise PlanFileError(f"{path}: not a plan file in {config.migrations_dir}/")
    edited = planfile.read(path)
    target = resolve_target(config, options.database_url)
    applied = history.applied_plan_names(_history(config, target))
    if edited.name in applied:
        raise PlanFileError(f"{shown}: already applied to {target.name}; a rehearsal proves a plan before it runs")
    earlier = [p.name for p in pending_plans(_plan_files(config), applied) if p.name < edited.name]
    if earlier:
        raise PendingPlansError(f"{shown} starts where {earlier[-1]} ends, which is not applied to {target.name} "
                                f"yet: apply the plans before it first")
    unchanged = edited.seal_problem() is None
    desired = load_desired_state(config, edited.plan.as_of)
    desired.admit()

    def make_plan(current, wanted):
        remake = functools.partial(replan, edited.plan, current.snapshot, wanted.snapshot)
        return remake(classified=False), remake

    proof = prove(config, desired, target, make_plan)
    _print_lint_warnings(proof.findings)
    # The reviewer's approval stands only for the statements it was given for.
    the_plan = dataclasses.replace(proof.plan, created_at=edited.plan.created_at,
                                   destructive_approved=edited.plan.destructive_approved and unchanged)
    planfile.rewrite(the_plan, path)
    rollback = planfile.rollback_path(migrations, path.name)
    if proof.reverse is not None:
        planfile.write_rollback(proof.reverse, migrations, path.name)
    elif rollback.exists():
        rollback.unlink()  # it was the reverse of the plan before the edit
    _emit_plan(options, config, target, the_plan, path, "rewrote")
    if edited.plan.destructive_approved and not unchanged and the_plan.destructive:
        print(f"warning: {shown}: '-- {planfile.APPROVAL_KEY}:' was reset to no: its statements changed since "
              f"the destructive ones were approved", file=sys.stderr)
    return EXIT_OK


def lint(options: Options, plan_paths: list[Path]) -> int:
    """With plan files: squawk on them. Without: the security rules on the declared state, and squawk
    on every plan under migrations/. Exit 0 with no findings, 2 with findings."""
    config = load_config(options.project, options.config_file)
    paths = plan_paths or planfile.list_plans(config.path(config.migrations_dir))
    total = 0
    report = {}
    if not plan_paths:
        desired = load_desired_state(config, options.as_of or dt.date.today())
        desired.admit()
        target = resolve_target(config, options.database_url)
        with desired_database(config, desired, target) as scratch:
            findings = lint_findings(config, scratch)
        total += len(findings)
        report["declared state"] = [{"rule": f.rule, "object": f.object, "message": f.message} for f in findings]
        if options.format == "text":
            for finding in findings:
                _print(f"declared state: {finding.describe()}")
    for path in paths:
        plan_file = planfile.read(Path(path))
        findings = squawk([s.sql for s in plan_file.plan.statements])
        total += len(findings)
        report[str(path)] = [{"statement": f.statement, "rule": f.rule, "message": f.message, "help": f.help}
                             for f in findings]
        if options.format == "text":
            for finding in findings:
                _print(f"{path}: statement {finding.statement}: {finding.describe()}")
    if options.format == "json":
        _print(json.dumps(report, indent=2))
    elif not total:
        _print(f"No findings in {'the declared state and ' if not plan_paths else ''}{len(paths)} plan(s).")
    return EXIT_CHANGES if total else EXIT_OK


def _emit_no_changes(options: Options) -> None:
    if options.format == "json":
        _print(json.dumps({"statements": [], "changes": False}))
    else:
        _print("No changes: the target matches the declared state.")


def _git_commit(project: Path) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def apply(options: Options, *, allow_destructive: bool = False) -> int:
    config = load_config(options.project, options.config_file)
    plans = _plan_files(config)
    target = resolve_target(config, options.database_url)
    result = apply_plans(
        config, target.url, plans, allow_destructive=allow_destructive,
        git_commit=_git_commit(config.project_dir),
        applied_by=f"{getpass.getuser()}@{socket.gethostname()}",
        on_progress=_print,
    )
    for applied in result.applied:
        _print(f"applied {applied.name}: {applied.statements} statements in {applied.duration_ms} ms")
    if not result.applied:
        _print(f"Nothing to apply: {result.already_applied} plan(s) already applied to {target.name}.")
    return EXIT_OK


def rollback(options: Options, *, allow_destructive: bool = False) -> int:
    config = load_config(options.project, options.config_file)
    target = resolve_target(config, options.database_url)
    done = rollback_last(
        config, target.url, config.path(config.migrations_dir), allow_destructive=allow_destructive,
        git_commit=_git_commit(config.project_dir), applied_by=f"{getpass.getuser()}@{socket.gethostname()}",
        on_progress=_print,
    )
    rolled_back = done.name
    _print(f"rolled back {rolled_back}: {done.statements} statements in {done.duration_ms} ms. It is pending again: "
           f"remove it from {config.migrations_dir}/ (git revert), or fix the declared files and plan anew.")
    return EXIT_OK


def test(options: Options) -> int:
    """Policy tests (policies/tests/*.yaml) on the declared state, on a server where creating the
    test's role harms nothing: scratch.server_url, else an embedded server (never the target's)."""
    from .checks.policy_tests import read_tests, run_tests
    from .scratch.databases import ScratchServer, build_role_on
    from .servers import EmbeddedServer, embedded_data_dir

    config = load_config(options.project, options.config_file)
    as_of = options.as_of or dt.date.today()
    test_files = read_tests(config.project_dir, as_of)
    if not test_files:
        raise DeclaredStateError(f"no policy tests: add YAML files under {config.project_dir / 'policies' / 'tests'}")
    desired = load_desired_state(config, as_of)
    desired.admit()
    if config.scratch_mode == "server":
        server = ScratchServer(config.scratch_server_url, False)
    else:
        embedded = EmbeddedServer.start(embedded_data_dir(config).parent / "test-pgdata")
        server = ScratchServer(embedded.url("postgres"), False, embedded)
    timeout = config.timeouts.connect_timeout_s
    with build_role_on(server, timeout) as server, ScratchDatabase(server, "policytests", timeout) as scratch:
        scratch.prepare(config)
        scratch.load_desired(desired)
        builder = server.builder.name if server.builder else None
        outcomes = run_tests(scratch.url, server.admin_url, builder, test_files)
    failed = [o for o in outcomes if not o.passed]
    if options.format == "json":
        _print(json.dumps([dataclasses.asdict(o) for o in outcomes], indent=2))
    else:
        for outcome in outcomes:
            _print(f"{'ok  ' if outcome.passed else 'FAIL'} {outcome.file}: {outcome.test}"
                   + (f"\n     {outcome.detail}" if outcome.detail else ""))
        _print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    return EXIT_ERROR if failed else EXIT_OK


def drift(options: Options) -> int:
    config, desired, target = _setup(options)
    plans = _plan_files(config)
    entries = _history(config, target)
    pending = pending_plans(plans, history.applied_plan_names(entries))
    lookup = _look_up_desired(config, desired, target, options)
    if lookup.hit is not None:
        # The target matches the desired state cached for these exact declared files, as-of date,
        # server version and engine: nothing to build, nothing for migra to find.
        lint_findings, differences, fix_sql = list(lookup.hit.lint_findings), [], []
        current_snapshot, declared_fingerprint = lookup.target_snapshot, lookup.hit.snapshot.fingerprint
        _print_lint_warnings(lint_findings)
    else:
        with scratch_space_for(config, target) as server, ThreadPoolExecutor(max_workers=1) as beside, \
                ScratchDatabase(server, "desired", config.timeouts.connect_timeout_s) as scratch:
            current, wanted, lint_findings = build_and_inspect(config, desired, target, scratch, beside)
            _print_lint_warnings(lint_findings)
            lookup.cache.put(lookup.key, wanted.snapshot, lint_findings)
            differences = current.snapshot.differences(wanted.snapshot)
            fix_sql = [s.sql for s in diff(current, wanted, DiffContext(desired.partition_specs)).statements]
        current_snapshot, declared_fingerprint = current.snapshot, wanted.snapshot.fingerprint
    missing = missing_partitions(desired.partition_specs, desired.as_of, current_snapshot)
    stranded = _stranded_rows(config, target, desired, current_snapshot)
    fingerprint = current_snapshot.fingerprint
    last_after = entries[-1].fingerprint_after if entries else None
    out_of_band = last_after is not None and fingerprint != last_after
    pending_explains = bool(pending) and pending[0].plan.fingerprint_before == fingerprint and \
        pending[-1].plan.fingerprint_after == declared_fingerprint
    in_sync = not differences and not fix_sql and not pending and not out_of_band and not stranded
    report = {
        "in_sync": in_sync,
        "target": target.name,
        "as_of": desired.as_of.isoformat(),
        "fingerprint": fingerprint,
        "declared_fingerprint": declared_fingerprint,
        "declared_state": "cached" if lookup.hit is not None else "built",
        "last_applied_fingerprint": last_after,
        "changed_outside_reconcile": out_of_band,
        "pending_plans": [p.name for p in pending],
        "pending_plans_explain_differences": pending_explains,
        "missing_partitions": [m.describe() for m in missing],
        "stranded_rows": [s.describe() for s in stranded],
        "differences": [d.describe() for d in differences],
        "fix_sql": fix_sql,
        "not_compared": list(not_compared(config.scope)),
        "lint_warnings": [f.describe() for f in lint_findings],
    }
    if options.format == "json":
        _print(json.dumps(report, indent=2))
    else:
        _print_drift(report)
    return EXIT_OK if in_sync else EXIT_CHANGES


def _stranded_rows(config: Config, target: Target, desired: DesiredState, snapshot) -> list:
    conn = connect(target.url, config.timeouts.connect_timeout_s)
    try:
        with conn.cursor() as cur:
            return stranded_rows(cur, desired.partition_specs, desired.as_of, snapshot)
    finally:
        conn.close()


def maintain(options: Options) -> int:
    """For cron: create the current and upcoming declared partitions; additive only, no reviewed plan."""
    config, desired, target = _setup(options)
    entries = _history(config, target)
    pending = pending_plans(_plan_files(config), history.applied_plan_names(entries))
    if pending:
        raise PendingPlansError(
            f"{len(pending)} reviewed plan(s) are waiting to be applied ({', '.join(p.name for p in pending)}); "
            f"maintain changed nothing, so that they still apply: run 'reconcile apply' first"
        )
    result = maintain_partitions(config, target.url, desired.partition_specs, desired.as_of,
                                 applied_by=f"{getpass.getuser()}@{socket.gethostname()} (maintain)",
                                 on_progress=_print)
    if result.created:
        moved = f", moving {result.moved_rows} row(s) out of the DEFAULT partition" if result.moved_rows else ""
        _print(f"created {len(result.created)} partition(s): {', '.join(result.created)}{moved}")
    if result.detached:
        _print(f"detached {len(result.detached)} expired partition(s) into the archive schema, rows kept: "
               f"{', '.join(result.detached)}")
    if not result.created and not result.detached:
        _print(f"Nothing to do: every current and upcoming partition exists on {target.name}.")
    return EXIT_OK


def _print_section(title: str, lines: list[str]) -> None:
    if lines:
        _print(f"\n{title}")
        for line in lines:
            _print(f"  - {line}")


def _print_drift(report: dict) -> None:
    if report["in_sync"]:
        _print(f"In sync: {report['target']} matches the declared state (as of {report['as_of']}).")
        return
    _print(f"Drift: {report['target']} does not match the declared state (as of {report['as_of']}).")
    if report["pending_plans"]:
        explained = " (they account for every difference)" if report["pending_plans_explain_differences"] else ""
        _print_section(f"Reviewed plans not yet applied{explained}:", report["pending_plans"])
    if report["changed_outside_reconcile"]:
        _print("\nChanged outside reconcile since the last apply "
               f"(fingerprint {report['fingerprint'][:19]}…, last applied {report['last_applied_fingerprint'][:19]}…).")
    _print_section("Partitions missing ('reconcile maintain' creates the current and upcoming ones):",
                   report["missing_partitions"])
    _print_section("Rows in a DEFAULT partition that a declared partition should hold:", report["stranded_rows"])
    _print_section("Differences (target vs declared):", report["differences"])
    if report["fix_sql"]:
        _print("\nSQL that would bring the target to the declared state (run 'reconcile plan' to get a reviewed plan):")
        for sql in report["fix_sql"]:
            _print("  " + sql.replace("\n", "\n  "))
    _print(f"\nNot compared: {'; '.join(report['not_compared'])}.")


def status(options: Options) -> int:
    config = load_config(options.project, options.config_file)
    plans = _plan_files(config)
    target = resolve_target(config, options.database_url)
    entries = _history(config, target)
    pending = pending_plans(plans, history.applied_plan_names(entries))
    # Pending plans apply would refuse: edited since their rehearsal.
    unsealed = {p.name: problem for p in pending if (problem := p.seal_problem()) is not None}
    if options.format == "json":
        _print(json.dumps({
            "applied": [{"plan_file": e.plan_file, "applied_at": e.applied_at.isoformat(), "applied_by": e.applied_by,
                         "git_commit": e.git_commit, "duration_ms": e.duration_ms} for e in entries],
            "pending": [p.name for p in pending],
            "edited_since_rehearsal": unsealed,
        }, indent=2))
        return EXIT_OK
    _print(f"Target: {target.name}")
    _print(f"Applied ({len(entries)}):")
    for e in entries:
        _print(f"  {e.plan_file}  {e.applied_at:%Y-%m-%d %H:%M:%S %Z}  by {e.applied_by}"
               f"{'  at ' + e.git_commit[:12] if e.git_commit else ''}")
    _print(f"Pending ({len(pending)}):")
    for p in pending:
        edited = unsealed.get(p.name)
        _print(f"  {p.name}" + (f"  (apply refuses it: {edited}; run 'reconcile rehearse "
                                f"{config.migrations_dir}/{p.name}')" if edited else ""))
    return EXIT_OK
