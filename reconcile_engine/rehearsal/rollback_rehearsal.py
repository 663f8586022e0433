"""Stage 6 for a rollback after `maintain`: the rollback plan was rehearsed from where its plan ended,
but maintain has since created (or detached) partitions. Run it again, on a scratch copy of the
target as it is now, to learn where it ends: that state, maintain's partitions included, is what the
rollback returns to, and apply checks the target reaches exactly it."""

from __future__ import annotations

from ..config import Config
from ..errors import PlanNotConvergedError
from ..inspection.snapshot import read_snapshot, take_snapshot
from ..planning.build import Plan
from ..runner import PlanStatementFailed, run_on_scratch
from ..scratch.databases import ScratchDatabase
from ..servers import Target
from .proof import scratch_space_for
from ..inspection.migra_view import inspect_database
from .target_copy import copy_target


def rehearse_on_target_copy(config: Config, target: Target, reverse: Plan, label: str) -> str:
    """The fingerprint a copy of the target's schema has after `reverse` ran on it (in the order and
    units apply runs it); PlanNotConvergedError when it fails there."""
    timeout = config.timeouts.connect_timeout_s
    now = read_snapshot(target.url, config.scope, timeout)
    with scratch_space_for(config, target) as server, ScratchDatabase(server, "rehearsal", timeout) as copy:
        copy.prepare(config)
        copy_target(copy, target.url, now, config, lambda: inspect_database(target.url, config.scope, timeout, snapshot=now))
        conn = copy.connect(autocommit=False)
        try:
            run_on_scratch(conn, reverse.statements, "rollback rehearsal", copy.inert)
            copy.inert.restore(conn)
            conn.commit()
            return take_snapshot(conn, config.scope).fingerprint
        except PlanStatementFailed as failed:
            raise PlanNotConvergedError(
                f"{label} cannot run on the target as 'maintain' left it, so nothing was rolled back: {failed}"
            ) from failed
        finally:
            conn.close()
