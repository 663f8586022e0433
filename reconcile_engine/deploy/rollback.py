"""Stage 8 (deploy): rollback, the rehearsed reverse of the last applied plan, applied with apply's guards."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from ..config import Config
from ..connections import connect_to_change
from ..errors import NothingToRollBackError, StalePlanError
from ..planning import planfile
from . import history
from .advisory_lock import lock_for_change
from .apply import AppliedPlan, _apply_one

@dataclasses.dataclass(frozen=True)
class Rebased:
    """A rollback plan moved past the partitions `maintain` made since its plan: it starts where the
    last maintain run ended and ends where its rehearsal on a copy of the target ended."""

    plan: object  # planning.build.Plan
    name: str
    sha256: str


def rollback_last(config: Config, target_url: str, migrations, *, allow_destructive: bool,
                  git_commit: str | None, applied_by: str, on_progress=lambda message: None,
                  rehearse_after_maintain: Callable | None = None) -> AppliedPlan:
    """Apply the rehearsed reverse of the last applied plan, with apply's guards; refuse when the
    database has moved on since that plan (its fingerprint is no longer the plan's after), unless
    only 'maintain' ran since: then `rehearse_after_maintain(reverse_plan, label)` gives the
    fingerprint the reverse reaches from the target as it is (maintain's partitions are part of the
    state the rollback returns to)."""
    conn = connect_to_change(target_url, config.timeouts.connect_timeout_s)
    try:
        with conn.cursor() as cur:
            lock_for_change(cur, config.timeouts)
            history.ensure_table(cur)
            in_effect = [e for e in history.read(cur) if e.rolled_back_at is None and not e.plan_file.startswith("rollback/")]
        plans = [e for e in in_effect if e.is_plan]
        if not plans:
            if in_effect:
                raise NothingToRollBackError(f"the last change was '{in_effect[-1].plan_file}', not a reviewed plan; "
                                             f"nothing was rolled back")
            raise NothingToRollBackError("nothing to roll back: no applied plan is recorded on this database")
        last = plans[-1]
        since = in_effect[in_effect.index(last) + 1:]  # maintain runs only: a plan after it would be the last
        path = planfile.rollback_path(migrations, last.plan_file)
        if not path.exists():
            raise NothingToRollBackError(f"{path}: no rollback plan for {last.plan_file} (plan writes one when its reverse "
                                 f"rehearses cleanly; see that plan's '-- rollback:' line)")
        reverse = planfile.read(path)
        reverse.check_sealed(f"{config.migrations_dir}/{planfile.ROLLBACK_FOLDER}/{last.plan_file}")
        if reverse.plan.fingerprint_before != last.fingerprint_after:
            raise StalePlanError(f"{path} does not start where {last.plan_file} ended; nothing was rolled back")
        if since:
            reverse = _past_maintain(reverse, last, since, rehearse_after_maintain, on_progress)
        on_progress(f"rolling back {last.plan_file} ({len(reverse.plan.statements)} statements)")
        # To the microsecond: a plan rolled back, applied again and rolled back within a second must
        # not record a second rollback of the same name (history's names in effect are unique).
        when = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%S.%fZ}"
        return _apply_one(conn, config, reverse, allow_destructive, git_commit, applied_by, on_progress,
                          record_as=f"rollback/{last.plan_file} {when}",
                          rolls_back=last.plan_file)
    finally:
        conn.close()


def _past_maintain(reverse, last, since, rehearse_after_maintain, on_progress) -> Rebased:
    """The rollback plan, rebased past the maintain runs recorded since its plan (each starting where
    the one before ended: anything else changed the schema, and the rollback is refused)."""
    ended = last.fingerprint_after
    for entry in since:
        if entry.fingerprint_before != ended:
            raise StalePlanError(f"the database changed after {last.plan_file} was applied, before "
                                 f"'{entry.plan_file}' ran; nothing was rolled back: plan the way back instead")
        ended = entry.fingerprint_after
    if rehearse_after_maintain is None:
        raise StalePlanError(f"'reconcile maintain' ran after {last.plan_file}; nothing was rolled back")
    on_progress(f"'reconcile maintain' ran {len(since)} time(s) since {last.plan_file}: rehearsing its rollback "
                f"on a copy of the target as it is now")
    label = f"the rollback of {last.plan_file}"
    after = rehearse_after_maintain(reverse.plan, label)
    plan = dataclasses.replace(reverse.plan, fingerprint_before=ended, fingerprint_after=after)
    return Rebased(plan, reverse.name, reverse.sha256)
