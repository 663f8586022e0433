"""Partition lifecycle: 'reconcile maintain' (for cron) creates the declared current and upcoming partitions
the target lacks, and detaches expired ones where a spec says auto_detach; additive only, no reviewed plan."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time

from ..config import Config
from ..connections import connect_to_change, connection_lost, roll_back_if_alive
from ..deploy import history
from ..errors import ApplyFailedError, ApplyInterruptedError, StalePlanError, interruption
from ..version import __version__
from .windows import (
    create_partition_statements, detach_statements, expired_partitions, missing_partitions, stranded_rows,
)

# What changes the target (the runner, the lock) is imported where it runs: MaintainResult is
# re-exported by results.py, which every command imports.

@dataclasses.dataclass(frozen=True)
class MaintainResult:
    created: tuple[str, ...]  # partition names
    moved_rows: int  # rows moved out of DEFAULT partitions into them
    detached: tuple[str, ...] = ()  # expired partitions moved to the archive schema (auto_detach specs)
    target: str = ""  # the target's password-free name

    def to_dict(self) -> dict:
        return {"target": self.target, "created": list(self.created), "moved_rows": self.moved_rows,
                "detached": list(self.detached)}


def maintain_partitions(config: Config, target_url: str, specs, as_of, *, verified_fingerprint: str,
                        applied_by: str, on_progress=lambda message: None) -> MaintainResult:
    """Create the declared current and upcoming partitions the target lacks: additive only, under the
    apply lock, recorded in the history. The caller has checked that the target matches the declared
    state but for those partitions (api.maintain), when its fingerprint was `verified_fingerprint`:
    under the lock it must still be, so nothing changed between that check and this change."""
    from ..deploy.advisory_lock import lock_for_change
    from ..diff.statement_facts import operation
    from ..inspection.snapshot import take_snapshot
    from ..runner import PlanStatementFailed, run_statements

    conn = connect_to_change(target_url, config.timeouts.connect_timeout_s)
    try:
        with conn.cursor() as cur:
            lock_for_change(cur, config.timeouts)
            history.ensure_table(cur)  # a database adopted with pull has had no apply yet
        started = time.monotonic()
        conn.autocommit = False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                            (f"{config.timeouts.lock_timeout_ms}ms", f"{config.timeouts.statement_timeout_ms}ms"))
                before = take_snapshot(conn, config.scope)
                if before.fingerprint != verified_fingerprint:
                    raise StalePlanError(
                        "the database changed while maintain compared it with the declared files, so maintain "
                        "changed nothing: run it again, or 'reconcile drift' to see what changed"
                    )
                missing = missing_partitions(specs, as_of, before, upcoming_only=True)
                stranded = {(s.spec.table, s.partition.name): s.rows for s in stranded_rows(cur, specs, as_of, before)}
                statements = []
                for item in missing:
                    on_progress(f"creating {item.describe().split(' missing')[0]}")
                    statements += create_partition_statements(cur, item, before)
                expired = expired_partitions(specs, as_of, before)
                for spec, name in expired:
                    on_progress(f"detaching expired partition {spec.schema}.{name} into {spec.archive_schema}")
                    statements += detach_statements(spec, name)
                try:
                    run_statements(conn, [operation(sql, "maintain") for sql in statements], "maintain")
                except PlanStatementFailed as failed:
                    raise ApplyFailedError(f"{failed}; rolled back, nothing was changed") from failed
                if not statements:
                    conn.rollback()
                    return MaintainResult((), 0)
                after = take_snapshot(conn, config.scope)
                history.record(
                    cur, plan_file=f"maintain {dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%S.%fZ}",
                    plan_sha256=hashlib.sha256("\n".join(statements).encode()).hexdigest(),
                    fingerprint_before=before.fingerprint, fingerprint_after=after.fingerprint,
                    git_commit=None, applied_by=applied_by, duration_ms=int((time.monotonic() - started) * 1000),
                    statement_count=len(statements), tool_version=__version__,
                )
            conn.commit()
        except BaseException as exc:
            lost = connection_lost(conn)
            roll_back_if_alive(conn)
            if lost or isinstance(exc, KeyboardInterrupt):
                # An interrupt closes the session too (psycopg2 drops a connection whose wait was broken).
                if isinstance(exc, KeyboardInterrupt):
                    outcome = f"maintain {interruption(exc)}; its transaction was rolled back, nothing was changed"
                else:  # perhaps while it committed: then its partitions exist, and a new run sees them
                    outcome = ("maintain stopped: the connection to the target was lost; what it had not "
                               "committed the server rolled back")
                raise ApplyInterruptedError(f"{outcome}: run 'reconcile maintain' again (it makes only what is "
                                            f"missing)") from exc
            raise
        moved = sum(stranded.get((m.spec.table, m.partition.name), 0) for m in missing)
        return MaintainResult(tuple(m.partition.name for m in missing), moved, tuple(name for _, name in expired))
    finally:
        conn.close()
