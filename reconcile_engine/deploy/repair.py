"""Stage 8 (deploy): repair, the way out of a stuck apply. A plan an apply began and could not finish
(interrupted for good, or hand-edited so that its end is not the one it promised) is recorded in the
history as applied with what it actually left: its committed steps stay, its unfinished ones are given
up, the fingerprint recorded is the target's own. The next `plan` then starts from the truth, and
`apply` no longer resumes or refuses it. Like Flyway's `repair` and Atlas's `migrate set`, it changes
no schema, only reconcile's record of it, and only after showing the difference."""

from __future__ import annotations

import dataclasses
import time

from ..config import CONVERSION_SCHEMA, Config
from ..connections import connect_to_change, roll_back_if_alive
from ..errors import NothingToRepairError
from ..inspection.snapshot import take_snapshot
from ..planning.planfile import PlanFile
from ..runner import plan_units
from ..version import __version__
from . import data_steps, history
from .advisory_lock import lock_for_change
from .apply import describe_unit
from .unfinished import unfinished_applies


@dataclasses.dataclass(frozen=True)
class StepLeft:
    number: int  # 1-based
    description: str
    committed: bool


@dataclasses.dataclass(frozen=True)
class Repair:
    """What an unfinished apply of `plan` left, and whether it is now recorded so."""

    plan: str
    steps: tuple[StepLeft, ...]
    expected_fingerprint: str  # the plan's promised end
    found_fingerprint: str  # the target's, recorded as the plan's end
    recorded: bool

    def to_dict(self) -> dict:
        return {"plan": self.plan, "steps": [dataclasses.asdict(s) for s in self.steps],
                "expected_fingerprint": self.expected_fingerprint, "found_fingerprint": self.found_fingerprint,
                "recorded": self.recorded}


def choose(cur, plans: list[PlanFile], name: str | None) -> PlanFile:
    """The plan to repair: the one named, else the only one an apply began and did not finish."""
    begun = {u.plan: u for u in unfinished_applies(cur, plans)}
    running = next((u.running_pid for u in begun.values() if u.running_pid is not None), None)
    if running is not None:
        raise NothingToRepairError(f"an apply is running now (session pid {running}); repair changed nothing: "
                                   f"wait for it to end, or stop it first")
    if name is not None:
        name = name.rsplit("/", 1)[-1]
        if name not in begun:
            raise NothingToRepairError(
                f"{name}: no apply of it began and stopped on this database ({', '.join(begun) or 'none did'}); "
                f"repair changed nothing: a plan that never ran is re-planned ('reconcile plan') or removed")
        chosen = begun[name]
    elif len(begun) == 1:
        chosen = next(iter(begun.values()))
    elif not begun:
        raise NothingToRepairError("nothing to repair: no apply began and stopped on this database "
                                   "('reconcile status' shows what is applied and pending)")
    else:
        raise NothingToRepairError(f"{len(begun)} applies began and stopped ({', '.join(begun)}): name the "
                                   f"one to repair: 'reconcile repair PLAN'")
    plan_file = next((p for p in plans if p.name == chosen.plan), None)
    if plan_file is None:
        raise NothingToRepairError(f"{chosen.plan}: its plan file is not under migrations/ any more; repair "
                                   f"records a plan from its file: restore it (git checkout) first")
    return plan_file


def _refuse_an_unfinished_conversion(cur, plan: str) -> None:
    """A partition conversion given up half-way leaves its shadow table, and the trigger that mirrors
    the live table's writes into it, in CONVERSION_SCHEMA: recording the plan would leave them behind
    (the trigger slowing every write, and no later plan can copy the target with it)."""
    cur.execute("SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
                (CONVERSION_SCHEMA,))
    tables = cur.fetchone()[0]
    if tables:
        raise NothingToRepairError(
            f"{plan}: its partition conversion did not finish ({CONVERSION_SCHEMA} holds the copy of {tables}, "
            f"kept up to date by a trigger on the live table); repair changed nothing: finish it with 'reconcile "
            f"apply', or give it up first with DROP SCHEMA {CONVERSION_SCHEMA} CASCADE (the copy and its trigger "
            f"go; the live table keeps every row), then repair")


def repair_plan(config: Config, target_url: str, plans: list[PlanFile], name: str | None, *, record: bool,
                git_commit: str | None, applied_by: str) -> Repair:
    """Under the apply lock: what the unfinished apply of the plan left; with `record`, record it in the
    history as applied (by `applied_by` + ' (repair)'), with the target's fingerprint as its end, and
    forget its progress, in one transaction."""
    conn = connect_to_change(target_url, config.timeouts.connect_timeout_s)
    try:
        with conn.cursor() as cur:
            lock_for_change(cur, config.timeouts)
            plan_file = choose(cur, plans, name)
            if record:
                _refuse_an_unfinished_conversion(cur, plan_file.name)
                history.ensure_table(cur)  # complete, as apply would have it, before writing to it
        conn.autocommit = False
        with conn.cursor() as cur:
            done = history.steps_done(cur, plan_file.name)
            units = plan_units(plan_file.plan.statements)
            steps = tuple(StepLeft(index, describe_unit(unit), unit.number in done)
                          for index, unit in enumerate(units, 1))
            found = take_snapshot(conn, config.scope).fingerprint
            plan = plan_file.plan
            if record:
                started = time.monotonic()
                history_id = history.record(
                    cur, plan_file=plan_file.name, plan_sha256=plan_file.sha256,
                    fingerprint_before=plan.fingerprint_before, fingerprint_after=found, git_commit=git_commit,
                    applied_by=f"{applied_by} (repair)", duration_ms=int((time.monotonic() - started) * 1000),
                    statement_count=sum(len(u.statements) for u in units if u.number in done),
                    tool_version=__version__,
                )
                history.clear_steps(cur, plan_file.name)
                data_steps.link(cur, plan_file.name, history_id)  # the data steps it ran are this apply's
            conn.commit()
        return Repair(plan_file.name, steps, plan.fingerprint_after, found, record)
    except BaseException:
        roll_back_if_alive(conn)
        raise
    finally:
        conn.close()
