"""Stage 6c: 'plan --baseline' — one plan that builds the whole declared state from an empty database,
so that 'check' replays it and the plans after it rather than the whole history.

Made as other plans are (diffed, built, squawked) against an empty scratch database prepared as a
target is before its first plan (roles, external schemas, extensions); rehearsed on it; and written
only when the state it builds is both the declared one and the one the committed plans replay to.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..checks.squawk import squawk
from ..config import Config
from ..connections import connected, server_major
from ..diff.migra_diff import diff
from ..diff.operations import DiffContext
from ..errors import BaselineError
from ..inspection.migra_view import inspect_database
from ..inspection.snapshot import CatalogSnapshot, not_compared, read_snapshot
from ..planning import planfile
from ..planning.build import Plan, build_plan
from ..runner import PlanStatementFailed, run_on_scratch
from ..scratch.databases import ScratchDatabase
from .replay import empty_database, read_history, replay_history, server_without_target

ROLLBACK_NOTE = "none: a baseline is never applied; 'reconcile check' replays it in place of the plans it covers"


@dataclasses.dataclass(frozen=True)
class Baseline:
    plan: Plan
    path: Path
    covers: str


def _refuse_differences(first: CatalogSnapshot, second: CatalogSnapshot, names: tuple[str, str], why: str) -> None:
    differences = first.differences(second)
    if differences:
        more = f" and {len(differences) - 1} more" if len(differences) > 1 else ""
        raise BaselineError(f"{why} ({differences[0].describe(*names)}{more}); no baseline was written")


def write_baseline(config: Config, load_desired, migrations: Path) -> Baseline:
    """Write migrations/baselines/<stamp>_baseline.sql, covering the newest plan under migrations/."""
    shown = str(config.migrations_dir)
    history = read_history(config)
    if not history.plans:
        raise BaselineError(f"no plan in {shown}/ to cover: a baseline stands for plans already made; "
                            f"run 'reconcile plan' first")
    if history.failures:
        raise BaselineError(history.failures[0].message)
    covers = history.plans[-1]
    desired = load_desired(covers.plan.as_of)  # the partition windows the plans were made for
    desired.admit()
    timeout = config.timeouts.connect_timeout_s
    context = DiffContext.of(desired, config.batch_rows)
    with server_without_target(config) as server:
        with ScratchDatabase(server, "replay", timeout) as replayed_db:
            state = replay_history(replayed_db, config, desired, history)
            if state.failure is not None and not state.needs_baseline:
                raise BaselineError(f"{state.failure.message}; no baseline was written")
            # Plans made from an adopted database do not replay from empty: then the newest plan's
            # fingerprint-after (read on the target) stands for their state.
            replayed = None if state.needs_baseline else read_snapshot(replayed_db.url, config.scope, timeout)
        with ScratchDatabase(server, "empty", timeout) as empty, \
                ScratchDatabase(server, "declared", timeout) as declared:
            empty_database(empty, config, desired)
            current = inspect_database(empty.url, config.scope, timeout)
            declared.prepare(config)
            declared.load_desired(desired)
            wanted = inspect_database(declared.url, config.scope, timeout)
            if replayed is not None:
                _refuse_differences(replayed, wanted.snapshot, ("plans", "declared"),
                                    f"the declared files differ from what the plans in {shown}/ build: run "
                                    f"'reconcile plan' first")
            elif wanted.snapshot.fingerprint != covers.plan.fingerprint_after:
                raise BaselineError(
                    f"the declared state built here is not the state {shown}/{covers.name} ends at on its target "
                    f"(its fingerprint-after), and its plans cannot be replayed from an empty database to compare: "
                    f"run 'reconcile plan' first, or build on a server of the target's version (scratch.server_url); "
                    f"no baseline was written")
            the_plan = build_plan(diff(current, wanted, context), current.snapshot, wanted.snapshot, desired.as_of)
            conn = empty.connect(autocommit=False)  # the rehearsal: on the empty database itself
            try:
                run_on_scratch(conn, the_plan.statements, "baseline", empty.inert)
                empty.inert.restore(conn)
                conn.commit()
            except PlanStatementFailed as failed:
                raise BaselineError(f"the baseline fails on an empty database: {failed}") from failed
            finally:
                conn.close()
            built = read_snapshot(empty.url, config.scope, timeout)
            _refuse_differences(built, wanted.snapshot, ("baseline", "declared"),
                                "the baseline does not reach the declared state on an empty database")
        with connected(server.admin_url, timeout) as conn:
            major = server_major(conn)
    the_plan = dataclasses.replace(the_plan, rollback_note=ROLLBACK_NOTE, not_compared=not_compared(config.scope))
    the_plan = the_plan.with_lint(squawk(the_plan.statements, major))
    return Baseline(the_plan, planfile.write_baseline(the_plan, migrations, covers.name), covers.name)
