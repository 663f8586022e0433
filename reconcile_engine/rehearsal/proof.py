"""Stages 2-6 for one plan, side by side: build the declared state and a copy of the target, make the
plan, rehearse it forward on the copy and backward on the declared state, and lint it meanwhile.
'plan' makes the plan by diffing; 'rehearse' takes it from an edited plan file. Returns data; the
commands render it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ..checks.security_rules import check as security_findings
from ..checks.squawk import squawk
from ..config import Config
from ..connections import connected, server_major
from ..declared.files import DesiredState
from ..diff.corrections.retention import archived_by
from ..diff.operations import DiffContext, SchemaDiff
from ..diff.renames import ORIGIN as RENAMES, Renames, needed_renames
from ..diff.scope import relations, relations_to_diff
from ..errors import PlanNotConvergedError, PreflightFailedError, ScratchError
from ..inspection.migra_view import InspectedDatabase, inspect_database
from ..inspection.snapshot import CatalogSnapshot, not_compared, read_snapshot
from ..planning import planfile
from ..planning.build import Plan, build_plan
from ..planning.preflight import refusal
from ..process_memory import give_back_freed, share_arenas
from ..scratch.databases import ScratchDatabase
from ..scratch.layers import LayerStore
from ..scratch.space import scratch_space
from ..runner import PlanStatementFailed, run_statements
from ..servers import Target
from ..sqltext import quote_ident
from .preflight_checks import run_preflight
from .rehearse import ONE_TRANSACTION_RELATIONS, rehearse
from .target_copy import copy_target

log = logging.getLogger(__name__)

# (current, declared) -> None when there is nothing to do, else the plan to rehearse.
PlanMaker = Callable[[InspectedDatabase, InspectedDatabase], "Plan | None"]


@dataclasses.dataclass(frozen=True)
class Proof:
    declared: CatalogSnapshot  # the declared state, as built
    findings: tuple  # the security lint's, on the declared state
    plan: Plan | None = None  # rehearsed, classified, with row counts, squawk, rollback note; None: no changes
    reverse: Plan | None = None  # its rehearsed reverse, when it leads back exactly
    notes: tuple[str, ...] = ()  # rename directives ignored (stale, or both names present)


@contextlib.contextmanager
def scratch_space_for(config: Config, target: Target):
    """The scratch server with the run's build role on it, checked to run the target's major."""
    with scratch_space(config, target) as server:
        if not server.same_server_as_target:
            check_same_major(config, target.url, server.admin_url)
        yield server


@contextlib.contextmanager
def desired_database(config: Config, desired: DesiredState, target: Target):
    with scratch_space_for(config, target) as server, \
            ScratchDatabase(server, "desired", config.timeouts.connect_timeout_s) as scratch:
        scratch.prepare(config)
        scratch.load_desired(desired)
        yield scratch


class _TargetView:
    """The target's inspection with schemainspect's whole view, read once, on first demand, beside
    whatever asks (the copy of the target built from it, or the plan's diff), and held frozen until a
    diff thaws it (see inspect_frozen)."""

    def __init__(self, config: Config, target: Target, snapshot: CatalogSnapshot, beside: ThreadPoolExecutor):
        self._read = functools.partial(inspect_frozen, target.url, config.scope, config.timeouts.connect_timeout_s,
                                       snapshot)
        self._beside = beside
        self._lock = threading.Lock()
        self._reading: Future | None = None

    @property
    def started(self) -> bool:
        return self._reading is not None

    def start(self) -> Future:
        with self._lock:
            if self._reading is None:
                self._reading = self._beside.submit(self._read)
            return self._reading

    def whole(self) -> InspectedDatabase:
        return self.start().result()


def read_views(config: Config, scratch: ScratchDatabase, target: Target, target_now: CatalogSnapshot,
               target_view: _TargetView, beside: ThreadPoolExecutor, expected: str | None = None,
               ) -> tuple[InspectedDatabase, InspectedDatabase] | None:
    """Both sides' inspections for the plan's diff: (target, declared state). Where our snapshots show
    that the diff keeps to a few relations (diff/scope.py: a plan, and its reverse, made in one
    transaction), schemainspect reads only those on either side (at 2,500 tables about 0.7 s rather than
    5 to 7 s; a diff that needs more reads them again whole, InspectedDatabase.whole); else both whole,
    at the same time. The declared state's snapshot shares the target's keys. `expected`: the
    fingerprint the declared state must show (one taken over, _build); None when it does not."""
    timeout = config.timeouts.connect_timeout_s
    if not relations(target_now):  # from empty: nothing to leave out; read both at once, as from the start
        wanted = inspect_database(scratch.url, config.scope, timeout, like=target_now)
        if expected is not None and wanted.snapshot.fingerprint != expected:
            return None
        return target_view.whole(), wanted
    wanted_snapshot = read_snapshot(scratch.url, config.scope, timeout, like=target_now)
    if expected is not None and wanted_snapshot.fingerprint != expected:
        return None
    differences = target_now.differences(wanted_snapshot)
    kept = relations_to_diff(target_now, wanted_snapshot, differences) if differences else None
    if kept is None or len(kept) > ONE_TRANSACTION_RELATIONS:
        reading = target_view.start()
        wanted = inspect_database(scratch.url, config.scope, timeout, snapshot=wanted_snapshot)
        return reading.result(), wanted
    left_out = frozenset((relations(target_now) | relations(wanted_snapshot)) - kept)
    log.debug("schemainspect reads %d relation(s) of %d, on either side", len(kept), len(kept) + len(left_out))
    # The target's whole view, when its copy was made from it, serves as well (the diff cuts it down).
    reading = target_view.start() if target_view.started else beside.submit(
        inspect_database, target.url, config.scope, timeout, snapshot=target_now, leaving_out=left_out)
    wanted = inspect_database(scratch.url, config.scope, timeout, snapshot=wanted_snapshot, leaving_out=left_out)
    return reading.result(), wanted


def build_and_read(config: Config, desired: DesiredState, target: Target, scratch: ScratchDatabase,
                   beside: ThreadPoolExecutor, target_now: CatalogSnapshot | None = None,
                   ) -> tuple[CatalogSnapshot, CatalogSnapshot, list]:
    """drift and maintain: the desired state built in `scratch` while the target's snapshot is read
    beside it (unless given: `target_now`, read just before), then the desired state's snapshot. Our
    snapshots only: what they judge by. Neither is read by schemainspect here (a view is about twice a
    snapshot's memory and most of an inspection's time); inspect_database(..., snapshot=) reads that
    only where there is a difference to write SQL for. Returns (target, desired, lint findings);
    `scratch` is kept."""
    timeout = config.timeouts.connect_timeout_s
    target_snapshot = beside.submit(read_snapshot, target.url, config.scope, timeout) if target_now is None else None
    findings, _ = _build(config, desired, scratch, beside)
    wanted = scratch.snapshot(config.scope)
    return target_now or target_snapshot.result(), wanted, findings.result()


def _build(config: Config, desired: DesiredState, scratch: ScratchDatabase, beside: ThreadPoolExecutor,
           layers: LayerStore | None = None, kept: str | None = None) -> tuple[Future, bool]:
    """Load the declared state into `scratch`, or, with `kept` (the fingerprint the desired-state cache
    holds for these declared files), take over a state of that fingerprint kept on the scratch server
    (layers.py), when there is one: nothing is built. Returns the security lint on it, under way beside
    (its queries wait on the server while the caller reads the state), and whether a kept state was
    taken over (the caller checks that it shows `kept`, and else builds the state again)."""
    layers = layers if layers is not None else LayerStore.for_server(config, scratch.server)
    scratch.use_layers(layers)
    scratch.prepare(config)
    taken = kept is not None and layers is not None and \
        scratch.start_from(layers, layers.state_key(kept, scratch.server.environment))
    if taken:
        log.info("took over a kept state of the declared state (%s): not built", kept[:12])
    else:
        scratch.load_desired(desired)
    return beside.submit(lint_findings, config, scratch), taken


def lint_findings(config: Config, scratch: ScratchDatabase) -> list:
    """The security lint on the declared state; plan and drift show its findings as warnings."""
    conn = scratch.connect()
    try:
        with conn.cursor() as cur:
            return security_findings(cur, config.managed_schemas, config.lint_ignored, config.tenant_columns)
    finally:
        conn.close()


def inspect_frozen(url: str, scope, timeout: int, snapshot: CatalogSnapshot) -> InspectedDatabase:
    """The target's inspection, held frozen until a diff thaws it: the declared state's view is read
    beside it later, and two whole views alive at once (when the copy of the target is a kept one,
    which never reads this) were, at 10,000 tables, a plan's peak of memory."""
    inspected = inspect_database(url, scope, timeout, snapshot=snapshot)
    inspected.freeze()
    give_back_freed()
    return inspected


def prove(config: Config, desired: DesiredState, target: Target, make_plan: PlanMaker, *,
          renames: tuple = (), target_now: CatalogSnapshot | None = None,
          declared_fingerprint: str | None = None) -> Proof:
    """Build, make the plan, rehearse it both ways; raise PlanNotConvergedError when it does not reach
    the declared state on a copy of the target. `renames` (declared/renames.py) that the target needs
    lead the plan: they are run on the copy first, and the rest of the plan is made from there.
    `target_now`: the target's snapshot, when the caller has just read it (the desired-state cache's
    lookup): not read again (at 2,500 tables a read is about 2 s of the plan). `declared_fingerprint`:
    the declared state's, as the desired-state cache holds it for these files: a state of it kept on
    the scratch server (an earlier rehearsal's copy) is then taken over instead of building one, once
    it shows that fingerprint."""
    timeout = config.timeouts.connect_timeout_s
    share_arenas()
    if target_now is None:
        target_now = read_snapshot(target.url, config.scope, timeout)
    with scratch_space_for(config, target) as server, ThreadPoolExecutor(max_workers=3) as beside, \
            ScratchDatabase(server, "rehearsal", timeout) as copy, \
            ScratchDatabase(server, "desired", timeout) as scratch:
        layers = LayerStore.for_server(config, server)
        copy.use_layers(layers)  # once rehearsed, kept as the copy of the target the plan makes (layers.py)
        copy.prepare(config)  # first: with roles to create, two at once would race
        target_view = _TargetView(config, target, target_now, beside)
        if not relations(target_now):
            target_view.start()  # next to nothing to read: its copy and the diff need it whole
        # The target's copy (for the rehearsal) is made while the desired state is built: two backends,
        # each busy for about as long as loading the schema takes. Made from the target's whole
        # inspection (read then) unless a kept state of the target serves.
        copied = beside.submit(copy_target, copy, target.url, target_now, config, target_view.whole, layers)
        # kept: the reverse plan is rehearsed on it
        findings, taken = _build(config, desired, scratch, beside, layers, declared_fingerprint)
        views = read_views(config, scratch, target, target_now, target_view, beside,
                           declared_fingerprint if taken else None)
        if views is None:  # the kept state taken over does not show the declared state: built from the files
            log.info("a kept copy of the declared state does not show the catalog it was kept with: built again")
            findings.result()
            scratch.start_over()
            findings, _ = _build(config, desired, scratch, beside, layers)
            views = read_views(config, scratch, target, target_now, target_view, beside)
        current, wanted = views
        findings = findings.result()
        # The copy finished first: the statements that made it and the copy of the target's view they
        # were diffed from are let go before the plan's diff thaws the view again (at thousands of
        # tables the two overlapping were a plan's peak of memory). From an empty target it is at once.
        copy_checked = copied.result()
        give_back_freed()  # the inspections' rows, the copy's statements
        needed = needed_renames(renames, current.snapshot)
        original = current
        if needed.applied:
            current = renamed_copy(copy, needed, config)
        rest = make_plan(current, wanted)
        give_back_freed()  # the views the diff adjusted: the reverse diff thaws two more
        if rest is None and not needed.applied:
            return Proof(wanted.snapshot, tuple(findings), notes=needed.notes)
        rest = rest or build_plan(SchemaDiff((), ()), current.snapshot, wanted.snapshot, desired.as_of)
        the_plan = with_renames(rest, needed, original.snapshot, current.snapshot)
        lint = beside.submit(squawk, the_plan.statements, target_major(config, target))
        # Counted on the target's rows (read-only) while the copy, which has none, rehearses the plan.
        checks = beside.submit(run_preflight, config, target.url, the_plan, original.snapshot)
        archived = archived_by(the_plan.statements, original.snapshot.fact("partition parent"), config.managed_schemas)
        rehearsal = rehearse(rest, copy, scratch, current, wanted, config, DiffContext.of(desired, config.batch_rows),
                             reverse_to=original.snapshot, reverse_trailing=needed.reverse_operations,
                             archived=archived, copy_checked=copy_checked or needed.applied)
        # Kept rather than dropped where they can be (no copy written, no DROP DATABASE, whose checkpoint
        # the run would wait for): the copy, rehearsed, is the target once the plan is applied; the
        # declared state, once its reverse plan led back to the target exactly, is the target as it is
        # (a copy the next plan takes over while the target is not changed).
        kept = layers is not None and not archived
        if not (kept and rehearsal.converged and copy.keep_as_state(layers, wanted.snapshot.fingerprint)):
            copy.drop_in_background()  # both at once
        if not (kept and rehearsal.reverse is not None and scratch.keep_as_state(layers, original.snapshot.fingerprint)):
            scratch.drop_in_background()
        the_plan = the_plan.with_row_counts(count_rows(config, target, the_plan.tables_at_stake))
        the_plan = the_plan.with_lint(lint.result())  # squawk ran while the server rehearsed
        preflight = checks.result()
    if not rehearsal.converged:
        details = [f"  still to do: {s.splitlines()[0]}" for s in rehearsal.remaining_statements]
        details += [f"  still differs: {d.describe('after plan', 'declared')}" for d in rehearsal.remaining_differences]
        raise PlanNotConvergedError(
            f"the plan does not reach the declared state when rehearsed on a copy of the target, so it was not "
            f"written ({len(details)} difference(s) remain, listed above)",
            details,
        )
    failed = [outcome for outcome in preflight if outcome.passed is False]
    if failed:
        raise PreflightFailedError(*refusal(failed))
    if rehearsal.reverse is not None:
        note = f"{config.migrations_dir}/{planfile.ROLLBACK_FOLDER}/<this file's name> (rehearsed: leads back exactly)"
    else:
        note = f"none: {rehearsal.reverse_problem}"
    the_plan = dataclasses.replace(the_plan, rollback_note=note, not_compared=not_compared(config.scope),
                                   preflight=tuple(preflight))
    return Proof(wanted.snapshot, tuple(findings), the_plan, rehearsal.reverse, needed.notes)


def renamed_copy(copy: ScratchDatabase, needed: Renames, config: Config) -> InspectedDatabase:
    """Run the renames on the target's copy and inspect it: the rest of the plan starts there."""
    conn = copy.connect(autocommit=False)
    try:
        run_statements(conn, needed.operations, "renames")
        conn.commit()
    except PlanStatementFailed as failed:
        raise PlanNotConvergedError(f"the declared renames fail on a copy of the target: {failed}") from failed
    finally:
        conn.close()
    return inspect_database(copy.url, config.scope, config.timeouts.connect_timeout_s)


def with_renames(rest: Plan, needed: Renames, target: CatalogSnapshot, renamed: CatalogSnapshot) -> Plan:
    """The plan: the renames (judged against the target as it is), then the rest, from the target."""
    if not needed.applied:
        return rest
    lead = build_plan(SchemaDiff(tuple(needed.operations), ()), target, renamed, rest.as_of)
    return dataclasses.replace(rest, statements=lead.statements + rest.statements,
                               fingerprint_before=target.fingerprint,
                               corrections_used=rest.corrections_used + (RENAMES,))


def check_same_major(config: Config, target_url: str, scratch_url: str) -> None:
    """Catalog text (view definitions, defaults) differs between majors: comparing across them is noise."""
    majors = []
    for url in (target_url, scratch_url):
        with connected(url, config.timeouts.connect_timeout_s) as conn:
            majors.append(server_major(conn))
    if majors[0] != majors[1]:
        raise ScratchError(
            f"the scratch server runs PostgreSQL {majors[1]} but the target runs {majors[0]}; plans and drift "
            f"would not be trustworthy: set scratch.mode to target-server, or scratch.server_url to a "
            f"PostgreSQL {majors[0]} server"
        )


def target_major(config: Config, target: Target) -> int:
    with connected(target.url, config.timeouts.connect_timeout_s) as conn:
        return server_major(conn)


def count_rows(config: Config, target: Target, tables: set[str]) -> dict:
    """Row counts of the tables a plan drops, rewrites or detaches: the plan says what is at stake."""
    if not tables:
        return {}
    counts = {}
    with connected(target.url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        for table in sorted(tables):
            schema, _, name = table.rpartition(".")
            cur.execute("SELECT to_regclass(%s)", (f"{quote_ident(schema or 'public')}.{quote_ident(name)}",))
            regclass = cur.fetchone()[0]
            if regclass is not None:
                cur.execute(f"SELECT count(*) FROM {regclass}")
                counts[table] = cur.fetchone()[0]
    return counts
