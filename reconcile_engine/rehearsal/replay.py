"""Stage 6b: replay the committed plans on a scratch database, from empty (or from the newest baseline),
and compare the state they reach with the declared files, by our own catalog snapshots.

'reconcile check' is this, with the plans' own checks (seal, order, base, squawk) and the security
lint: the CI gate of a pull request. It needs no target: it runs on scratch.server_url (scratch.mode:
server) or on an embedded server under .reconcile/, and never connects to $DATABASE_URL or
database_url. 'plan --baseline' (baseline.py) proves a baseline against the same replay.
"""

from __future__ import annotations

import dataclasses
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..checks.squawk import squawk
from ..config import Config
from ..connections import connected, server_major
from ..declared.files import DesiredState
from ..diff.statement_facts import read_facts
from ..errors import PlanFileError
from ..inspection.snapshot import CatalogSnapshot, Difference, read_snapshot, take_snapshot
from ..lifecycle.windows import create_partition_statements, missing_partitions
from ..planning import planfile
from ..results import CheckFailure, CheckReport
from ..runner import PlanStatementFailed, run_on_scratch
from ..scratch.apart import server_apart
from ..scratch.databases import ScratchDatabase
from ..scratch.space import ScratchServer
from ..scratch.desired_cache import DesiredStateCache, cache_key
from ..scratch.target_environment import without_target
from .proof import lint_findings

_STAMP_LENGTH = 14  # planfile.file_name's yyyymmddHHMMSS


@dataclasses.dataclass(frozen=True)
class History:
    """The committed plans as check reads them: every plan under migrations/ (by name), the newest
    baseline, and the plans to replay after it (all of them without a baseline)."""

    plans: tuple[planfile.PlanFile, ...]
    baseline: planfile.PlanFile | None
    to_replay: tuple[planfile.PlanFile, ...]
    failures: tuple[CheckFailure, ...]  # a baseline that cannot be used


def _plan_paths(folder: Path, shown: str) -> list[Path]:
    """The plan files of one folder; a symbolic link among them is refused: check reads only files
    that are the project's own, and a link may lead anywhere."""
    if folder.is_symlink():
        raise PlanFileError(f"{shown}: a symbolic link; check reads plans only from the project's own folder")
    paths = planfile.list_plans(folder)
    for path in paths:
        if path.is_symlink():
            raise PlanFileError(f"{shown}/{path.name}: a symbolic link; check reads only plan files that are in "
                                f"{shown}/ itself: replace it with the file, or remove it")
    return paths


def read_history(config: Config) -> History:
    shown = str(config.migrations_dir)
    migrations = config.path(config.migrations_dir)
    plans = tuple(planfile.read(path) for path in _plan_paths(migrations, shown))
    folder = f"{shown}/{planfile.BASELINE_FOLDER}"
    baselines = [planfile.read(path) for path in _plan_paths(migrations / planfile.BASELINE_FOLDER, folder)]
    names = [p.name for p in plans]
    for baseline in reversed(baselines):  # the newest first
        problem = baseline.seal_problem()
        if problem is not None:
            failure = CheckFailure("checksum", f"{folder}/{baseline.name}", f"{folder}/{baseline.name}: {problem}; "
                                   f"delete it and run 'reconcile plan --baseline' again")
            return History(plans, None, plans, (failure,))
        covers = baseline.baseline_covers
        if covers not in names:  # only a name listed above is ever compared: never a path followed
            raise PlanFileError(f"{folder}/{baseline.name}: '-- {planfile.BASELINE_KEY}: {covers}' names no plan in "
                                f"{shown}/; delete the baseline and run 'reconcile plan --baseline' again")
        return History(plans, baseline, plans[names.index(covers) + 1:], ())
    return History(plans, None, plans, ())


def order_failures(plans, shown: str) -> list[CheckFailure]:
    """What the plans' headers show without running anything: a plan edited since its rehearsal, two
    plans stamped the same second, a plan made on another base than the one before it ends at (both
    headers were written on the same target, so they are compared as written)."""
    failures = []
    for plan in plans:
        problem = plan.seal_problem()
        if problem is not None:
            failures.append(CheckFailure("checksum", f"{shown}/{plan.name}", f"{shown}/{plan.name}: {problem}; "
                                         f"review the change, then run 'reconcile rehearse {shown}/{plan.name}'"))
    first_of_stamp: dict[str, str] = {}
    for plan in plans:
        stamp = plan.name[:_STAMP_LENGTH]
        if stamp in first_of_stamp:
            failures.append(CheckFailure(
                "same-timestamp", f"{shown}/{plan.name}", f"{shown}/{plan.name}: same timestamp as "
                f"{shown}/{first_of_stamp[stamp]}, so their order is by name alone; delete {plan.name} and run "
                f"'reconcile plan' again"))
        first_of_stamp.setdefault(stamp, plan.name)
    # Two plans made on the same base: two branches planned from one state and were merged. (A plan whose
    # base is merely not the end of the one before is no failure by itself: 'reconcile maintain' adds
    # partitions between plans on the target; the replay says whether the plans still apply.)
    for number, plan in enumerate(plans[1:], 1):
        before = plan.plan.fingerprint_before
        if before == plans[number - 1].plan.fingerprint_after:
            continue
        twin = next((p for p in plans[:number] if p.plan.fingerprint_before == before), None)
        if twin is not None:
            subject = f"{shown}/{plan.name}"
            failures.append(CheckFailure("different-bases", subject, (
                f"{subject}: made on the same base as {shown}/{twin.name} (a merge of two branches); "
                f"delete {plan.name} and run 'reconcile plan' again")))
    return failures


def squawk_failures(plans, shown: str, pg_major: int) -> list[CheckFailure]:
    """squawk's error-level findings (a statement it cannot read, say); its warnings are in the plans'
    headers, for their reviewers."""
    failures = []
    for plan in plans:
        for finding in squawk(plan.plan.statements, pg_major):
            if finding.level == "Error":
                subject = f"{shown}/{plan.name}"
                failures.append(CheckFailure("squawk", subject, f"{subject}: statement {finding.statement}: "
                                             f"{finding.describe()}; fix the declared files, delete {plan.name} "
                                             f"and run 'reconcile plan' again"))
    return failures


def server_without_target(config: Config):
    """The scratch server of check and baselines: never the target's, with the environment the declared
    files say (external/<schema>.sql, the roles they name)."""
    return server_apart(config, without_target(config), "scratch-pgdata")


@dataclasses.dataclass
class Replay:
    """What replaying plans in one scratch database did."""

    empty: CatalogSnapshot  # the database before any plan ran: prepared, with the listed extensions
    replayed: list[str] = dataclasses.field(default_factory=list)
    statements: int = 0
    failure: CheckFailure | None = None
    needs_baseline: bool = False  # the first plan was made on a database that was not empty


def empty_database(scratch: ScratchDatabase, config: Config, desired: DesiredState) -> CatalogSnapshot:
    """Prepare `scratch` as a target is before its first plan (roles, external schemas, extensions)."""
    scratch.prepare(config)
    scratch.create_listed_extensions(desired)
    return read_snapshot(scratch.url, config.scope, config.timeouts.connect_timeout_s)


def _maintained(conn, config: Config, specs, plan: planfile.PlanFile) -> None:
    """The partitions 'reconcile maintain' (cron) made on the target before this plan was made there:
    those current and upcoming as of the plan's date that the replay lacks and the plan does not make
    itself (it was made on a target that had them). Additive, as maintain is."""
    made_by_plan = {name for s in plan.plan.statements for name in read_facts(s.sql).creates}
    with conn.cursor() as cur:
        current = take_snapshot(conn, config.scope)
        for missing in missing_partitions(specs, plan.plan.as_of, current, upcoming_only=True):
            if f"{missing.spec.schema}.{missing.partition.name}" not in made_by_plan:
                for statement in create_partition_statements(cur, missing, current):
                    cur.execute(statement)


def replay(scratch: ScratchDatabase, plans, shown: str, replay_state: Replay, config: Config | None = None,
           specs=(), after_a_baseline: bool = False) -> Replay:
    """Run each plan as its rehearsal did (run_on_scratch, inert), in order; stop at the first that fails.
    With the partition `specs`, before each plan that follows another (or the baseline), what maintain
    made in between."""
    for number, plan in enumerate(plans):
        label = f"{shown}/{plan.name}"
        conn = scratch.connect(autocommit=False)
        try:
            if (number or after_a_baseline) and specs:
                _maintained(conn, config, specs, plan)
            run_on_scratch(conn, plan.plan.statements, label, scratch.inert)
            scratch.inert.restore(conn)
            conn.commit()
        except PlanStatementFailed as failed:
            replay_state.failure = CheckFailure(
                "does-not-apply", label, f"{failed} (replayed on the plans before it); delete {plan.name} and run "
                f"'reconcile plan' again")
            return replay_state
        finally:
            conn.close()
        replay_state.replayed.append(plan.name)
        replay_state.statements += len(plan.plan.statements)
    return replay_state


def replay_history(scratch: ScratchDatabase, config: Config, desired: DesiredState, history: History) -> Replay:
    """The replay check makes: from empty through the baseline and the plans after it. A first plan
    made on a database that was not empty (a project adopted with 'reconcile pull') cannot be."""
    shown = str(config.migrations_dir)
    state = Replay(empty_database(scratch, config, desired))
    if history.baseline is not None:
        state = replay(scratch, (history.baseline,), f"{shown}/{planfile.BASELINE_FOLDER}", state)
        if state.failure is not None:
            return state
        state.replayed.clear()  # the report names the baseline on its own
    elif history.to_replay and history.to_replay[0].plan.fingerprint_before != state.empty.fingerprint:
        first = history.to_replay[0].name
        state.needs_baseline = True
        state.failure = CheckFailure(
            "does-not-apply", f"{shown}/{first}", f"{shown}/{first}: made on a database that was not empty (adopted "
            f"with 'reconcile pull'?), so the plans cannot be replayed from an empty one: run 'reconcile plan "
            f"--baseline' to write a baseline they start from")
        return state
    return replay(scratch, history.to_replay, shown, state, config, desired.partition_specs,
                  after_a_baseline=history.baseline is not None)


@dataclasses.dataclass(frozen=True)
class _Cached:
    cache: DesiredStateCache
    key: str
    hit: object  # desired_cache.CachedDesiredState, or None


def look_up_declared(server: ScratchServer, config: Config, desired: DesiredState, use_cache: bool) -> _Cached:
    """The desired-state cache's entry for the declared state on this server, keyed for a server
    without a target by the external files that stand for the target's."""
    with connected(server.admin_url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        cur.execute("SELECT version()")
        version = cur.fetchone()[0]
    external = hashlib.sha256("\x1f".join(s.sql for s in server.environment.external_files).encode()).hexdigest()
    cache = DesiredStateCache.for_project(config)
    key = cache_key(desired, config, version, f"without target: {external}")
    return _Cached(cache, key, cache.get(key) if use_cache else None)


def build_declared(server: ScratchServer, config: Config, desired: DesiredState, cached: _Cached):
    """The declared state's snapshot (read from the catalog: with the owners that trace a difference to
    its declared file) and the security lint's findings on it."""
    timeout = config.timeouts.connect_timeout_s
    desired.admit()
    with ScratchDatabase(server, "declared", timeout) as scratch:
        scratch.prepare(config)
        scratch.load_desired(desired)
        findings = tuple(lint_findings(config, scratch))
        snapshot = read_snapshot(scratch.url, config.scope, timeout)
    cached.cache.put(cached.key, snapshot, findings)
    return snapshot, findings


def not_planned(replayed: CatalogSnapshot, declared: CatalogSnapshot, desired: DesiredState) -> list[CheckFailure]:
    """One line per declared file whose objects the plans do not build (or per object, when none of the
    files creates it): the declared files changed and no plan covers it."""
    creators = {}
    for source in desired.sources:
        for statement in source.statements:
            for name in read_facts(statement.text).creates:
                creators.setdefault(name, source.display)
    by_subject: dict[str, list[Difference]] = {}
    for difference in replayed.differences(declared):
        names = replayed.belongs_to(difference, declared)
        subject = next((creators[name] for name in names if name in creators), None)
        by_subject.setdefault(subject or (names[0] if names else difference.key), []).append(difference)
    failures = []
    for subject, differences in by_subject.items():
        # The object itself (a table, not its first column) says best what is missing.
        first = next((d for d in differences if d.kind == "table"), None) or next(
            (d for d in differences if d.key in replayed.belongs_to(d, declared)[:1]), differences[0])
        traced = subject in creators.values()
        if first.before is None:
            what = f"{first.kind} {first.key}: declared but no plan creates it"
        elif first.after is None:
            what = f"{first.kind} {first.key}: the plans create it but it is no longer declared"
        else:
            what = first.describe("plans", "declared")
        more = f" (and {len(differences) - 1} more difference(s))" if len(differences) > 1 else ""
        if not traced:
            subject = f"{first.kind} {first.key}"
        failures.append(CheckFailure("not-planned", subject, f"{subject + ': not planned: ' if traced else ''}{what}"
                                                             f"{more}; run 'reconcile plan'"))
    return failures


def lint_failures(findings) -> list[CheckFailure]:
    return [CheckFailure("lint", f.object, f"{f.object}: security lint: {f.rule}: {f.message}; fix the declared "
                         f"files, or ignore it under lint: in reconcile.yaml with the reason") for f in findings]


def check(config: Config, load_desired, use_cache: bool = True) -> CheckReport:
    """Replay the committed plans and compare with the declared state; every failure found is reported.
    `load_desired(as_of)`: the declared state as of a date (the newest replayed plan's, so that the
    partition windows are those its plans were made for)."""
    shown = str(config.migrations_dir)
    history = read_history(config)
    failures = list(history.failures) + order_failures(history.plans, shown)
    newest = history.to_replay or ((history.baseline,) if history.baseline else ())
    desired = load_desired(newest[-1].plan.as_of if newest else None)
    timeout = config.timeouts.connect_timeout_s
    with server_without_target(config) as server, ThreadPoolExecutor(max_workers=2) as beside:
        with connected(server.admin_url, timeout) as conn:
            major = server_major(conn)
        linted = beside.submit(squawk_failures, history.to_replay, shown, major)
        cached = look_up_declared(server, config, desired, use_cache)
        # Built beside the replay unless cached; a cached state serves only when the plans reach it
        # exactly (it has no owners to trace a difference by).
        declared = beside.submit(build_declared, server, config, desired, cached) if cached.hit is None else None
        with ScratchDatabase(server, "replay", timeout) as scratch:
            state = replay_history(scratch, config, desired, history)
            replayed = read_snapshot(scratch.url, config.scope, timeout) if state.failure is None else None
        if declared is not None:
            declared_state, findings = declared.result()
        elif replayed is not None and replayed.differences(cached.hit.snapshot):
            declared_state, findings = build_declared(server, config, desired, cached)
        else:
            declared_state, findings = cached.hit.snapshot, tuple(cached.hit.lint_findings)
        failures += linted.result()
    if state.failure is not None:
        failures.append(state.failure)  # the state reached is not the plans': comparing it would be noise
    else:
        failures += not_planned(replayed, declared_state, desired)
    failures += lint_failures(findings)
    baseline = f"{shown}/{planfile.BASELINE_FOLDER}/{history.baseline.name}" if history.baseline else None
    return CheckReport(tuple(state.replayed), baseline, state.statements, tuple(failures))
