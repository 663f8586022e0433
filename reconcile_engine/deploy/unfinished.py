"""Stage 8 (deploy): applies that began and did not finish, as status, drift and repair tell them: the
plan, the step it stopped at, what is committed, and whether an apply is running now."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

from . import history
from .advisory_lock import apply_lock_holder

if TYPE_CHECKING:  # annotations only; the runner is imported where an unfinished apply is described
    from ..planning.planfile import PlanFile


@dataclasses.dataclass(frozen=True)
class UnfinishedApply:
    plan: str
    step: int | None  # 1-based: the step that did not finish (None: all committed, not yet recorded)
    steps: int | None  # how many the plan has (None: its file is not under migrations/)
    step_description: str
    last_committed_at: dt.datetime
    running_pid: int | None  # the session applying it now, if one is

    @property
    def committed(self) -> int:
        return (self.steps if self.step is None else self.step - 1) if self.steps else 0

    def describe(self) -> str:
        if self.steps is None:
            where = "its plan file is not under migrations/"
        elif self.step is None:
            where = f"all {self.steps} of its steps are committed, its record in history is not"
        else:
            where = f"at step {self.step} of {self.steps} ({self.step_description})"
        if self.running_pid is not None:
            return f"{self.plan}: being applied now (session pid {self.running_pid}), {where}"
        return (f"{self.plan}: interrupted {where}; {self.committed} step(s) committed, the last at "
                f"{self.last_committed_at:%Y-%m-%d %H:%M:%S %Z}: run 'reconcile apply' to resume it, or 'reconcile "
                f"repair' to record what it left")

    def to_dict(self) -> dict:
        return {"plan": self.plan, "step": self.step, "steps": self.steps, "step_description": self.step_description,
                "last_committed_at": self.last_committed_at.isoformat(), "running_pid": self.running_pid,
                "description": self.describe()}


def unfinished_applies(cur, plans: list[PlanFile]) -> tuple[UnfinishedApply, ...]:
    """What reconcile.progress says of the plans under migrations/ (and of any it names that are gone)."""
    by_name = {p.name: p for p in plans}
    recorded = history.unfinished(cur)
    if not recorded:
        return ()
    from ..runner import plan_units
    from .apply import describe_unit

    running = apply_lock_holder(cur)
    found = []
    for entry in recorded:
        plan_file = by_name.get(entry.plan_file)
        if plan_file is None:
            found.append(UnfinishedApply(entry.plan_file, None, None, "", entry.last_at, running))
            continue
        units = plan_units(plan_file.plan.statements)
        stopped = next((i for i, unit in enumerate(units) if unit.number not in entry.steps_done), None)
        found.append(UnfinishedApply(
            entry.plan_file, None if stopped is None else stopped + 1, len(units),
            "" if stopped is None else describe_unit(units[stopped]), entry.last_at, running))
    return tuple(found)
