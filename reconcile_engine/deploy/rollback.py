"""Stage 8 (deploy): rollback, the rehearsed reverse of the last applied plan, applied with apply's guards."""

from __future__ import annotations

import datetime as dt

from ..config import Config
from ..connections import connect
from ..errors import NothingToRollBackError, StalePlanError
from ..planning import planfile
from . import history
from .advisory_lock import acquire_apply_lock
from .apply import AppliedPlan, _apply_one

def rollback_last(config: Config, target_url: str, migrations, *, allow_destructive: bool,
                  git_commit: str | None, applied_by: str, on_progress=lambda message: None) -> AppliedPlan:
    """Apply the rehearsed reverse of the last applied plan, with apply's guards; refuse when the
    database has moved on since that plan (its fingerprint is no longer the plan's after)."""
    conn = connect(target_url, config.timeouts.connect_timeout_s, autocommit=True)
    try:
        with conn.cursor() as cur:
            acquire_apply_lock(cur, config.timeouts.apply_lock_wait_ms)
            history.ensure_table(cur)
            in_effect = [e for e in history.read(cur) if e.rolled_back_at is None and not e.plan_file.startswith("rollback/")]
        if not in_effect:
            raise NothingToRollBackError("nothing to roll back: no applied plan is recorded on this database")
        last = in_effect[-1]
        if not last.is_plan:
            raise NothingToRollBackError(f"the last change was '{last.plan_file}', not a reviewed plan; nothing was rolled back")
        path = planfile.rollback_path(migrations, last.plan_file)
        if not path.exists():
            raise NothingToRollBackError(f"{path}: no rollback plan for {last.plan_file} (plan writes one when its reverse "
                                 f"rehearses cleanly; see that plan's '-- rollback:' line)")
        reverse = planfile.read(path)
        reverse.check_sealed(f"{config.migrations_dir}/{planfile.ROLLBACK_FOLDER}/{last.plan_file}")
        if reverse.plan.fingerprint_before != last.fingerprint_after:
            raise StalePlanError(f"{path} does not start where {last.plan_file} ended; nothing was rolled back")
        on_progress(f"rolling back {last.plan_file} ({len(reverse.plan.statements)} statements)")
        # To the microsecond: a plan rolled back, applied again and rolled back within a second must
        # not record a second rollback of the same name (history's names in effect are unique).
        when = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%S.%fZ}"
        return _apply_one(conn, config, reverse, allow_destructive, git_commit, applied_by, on_progress,
                          record_as=f"rollback/{last.plan_file} {when}",
                          rolls_back=last.plan_file)
    finally:
        conn.close()
