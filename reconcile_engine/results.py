"""What each command of the public API (api.py) returns: typed, documented data with to_dict().

The command line only renders these (render.py); a Python caller or a test reads their fields.
Results of one stage that a command passes on as they are (declared.new_project.NewProject, deploy.apply.ApplyResult,
lifecycle.maintain.MaintainResult, planning.build.Plan) are re-exported here, so that this module is
the one place to look them up.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from .checks.policy_tests import Outcome
from .declared.new_project import NewProject
from .deploy.apply import AppliedPlan, ApplyResult
from .deploy.data_steps import SkippedDataStep
from .deploy.history import HistoryEntry
from .inspection.security_drift import SECURITY, DriftDifference
from .lifecycle.maintain import MaintainResult
from .planning.build import Plan

if TYPE_CHECKING:  # annotations only: repair's stage is imported by the repair command
    from .deploy.repair import Repair

__all__ = [
    "AppliedPlan", "ApplyResult", "CheckFailure", "CheckReport", "DriftDifference", "DriftReport", "LintReport",
    "MaintainResult", "NewProject",
    "Outcome", "Plan", "PlanResult",
    "PolicyTestReport", "PullResult", "RollbackResult", "SkippedDataStep", "StatusReport",
]


@dataclasses.dataclass(frozen=True)
class PlanResult:
    """What `plan` (or `rehearse`, for an edited plan file) proved.

    plan is None when the target already matches the declared state. Otherwise the plan was rehearsed
    on a copy of the target and reached the declared state; file is where it was written (None for a
    dry run), rollback_file its rehearsed reverse (None when there is none: plan.rollback_note says why).
    """

    target: str  # the target's password-free name
    plan: Plan | None
    file: Path | None = None
    rollback_file: Path | None = None
    lint_warnings: tuple[str, ...] = ()  # the security lint's findings on the declared state
    approval_reset: bool = False  # rehearse: '-- destructive-approved: yes' was reset, statements changed
    declared_state: str = "built"  # "built", or "cached" when nothing needed building
    # No changes, yet the target's fingerprint is not the one the last apply recorded: it was changed
    # by hand to what the declared files say (drift is reconciled; nothing to plan).
    changed_since_last_apply: bool = False
    ignore: tuple[str, ...] = ()  # reconcile.yaml's ignore: globs, never compared (shown with "no changes")

    @property
    def changes(self) -> bool:
        return self.plan is not None

    def to_dict(self) -> dict:
        if self.plan is None:
            return {"statements": [], "changes": False, "target": self.target,
                    "changed_since_last_apply": self.changed_since_last_apply, "ignore": list(self.ignore),
                    "lint_warnings": list(self.lint_warnings)}
        return self.plan.to_dict() | {
            "changes": True, "target": self.target, "rehearsed": True,
            "file": str(self.file) if self.file else None,
            "rollback_file": str(self.rollback_file) if self.rollback_file else None,
            "lint_warnings": list(self.lint_warnings), "approval_reset": self.approval_reset,
        }


@dataclasses.dataclass(frozen=True)
class RollbackResult:
    target: str
    rolled_back: AppliedPlan  # the reverse plan that ran (named after the plan it rolls back)
    migrations_dir: str

    def to_dict(self) -> dict:
        return {"target": self.target, "rolled_back": self.rolled_back.name,
                "statements": self.rolled_back.statements, "duration_ms": self.rolled_back.duration_ms}


@dataclasses.dataclass(frozen=True)
class RepairResult:
    """What an unfinished apply left (deploy/repair.py), whether it is now recorded, and how the target
    still differs from the declared files (what the next plan covers)."""

    target: str
    repair: Repair
    differences: tuple[str, ...]  # target vs declared, after what the apply left

    def to_dict(self) -> dict:
        return {"target": self.target, **self.repair.to_dict(), "differences": list(self.differences)}


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """The target against the declared state, without writing anything. in_sync is the verdict: the
    declared files are the truth, so a target changed outside reconcile to exactly what they say is in
    sync (changed_outside_reconcile still tells, for information)."""

    target: str
    as_of: str
    fingerprint: str  # the target's
    declared_fingerprint: str
    declared_state: str  # "built", or "cached": the target matched the cached desired state exactly
    last_applied_fingerprint: str | None
    changed_outside_reconcile: bool  # the fingerprint is not the last apply's (informational)
    pending_plans: tuple[str, ...]
    pending_plans_explain_differences: bool
    missing_partitions: tuple[str, ...]
    stranded_rows: tuple[str, ...]
    differences: tuple[DriftDifference, ...]  # security ones first (inspection/security_drift.py)
    fix_sql: tuple[str, ...]  # what a plan would run (unrehearsed: run plan for a reviewed one)
    not_compared: tuple[str, ...]
    lint_warnings: tuple[str, ...]
    ignore: tuple[str, ...] = ()  # reconcile.yaml's ignore: globs (also in not_compared), shown even in sync
    # Applies that began and did not finish (deploy/unfinished.py): their committed steps are differences
    # reconcile made, not changes made outside it.
    unfinished_applies: tuple[str, ...] = ()
    # When the last reviewed plan was applied (ISO 8601, UTC; None: never), for a monitor's age gauge.
    last_plan_applied_at: str | None = None
    stranded_row_count: int = 0  # the rows stranded_rows describes, summed

    @property
    def in_sync(self) -> bool:
        return not (self.differences or self.fix_sql or self.pending_plans or self.stranded_rows)

    @property
    def security_drift(self) -> bool:
        """A difference weakens tenant isolation (RLS, a policy, a grant over RLS): page on this."""
        return any(d.severity == SECURITY for d in self.differences)

    def to_dict(self) -> dict:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["differences"] = [dataclasses.asdict(d) for d in self.differences]
        return {"in_sync": self.in_sync, "security_drift": self.security_drift} | {
            k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


@dataclasses.dataclass(frozen=True)
class LintFinding:
    source: str  # "declared state", or a plan file's path
    rule: str
    message: str
    statement: int | None = None  # in a plan file, 1-based
    object: str | None = None  # on the declared state, the object concerned
    help: str = ""

    def describe(self) -> str:
        if self.statement is None:
            return f"{self.source}: {self.rule}: {self.object}: {self.message}"
        return f"{self.source}: statement {self.statement}: {self.rule}: {self.message}" + (
            f" ({self.help})" if self.help else "")


@dataclasses.dataclass(frozen=True)
class LintReport:
    findings: tuple[LintFinding, ...]
    plans_checked: tuple[str, ...]
    declared_state_checked: bool  # built in a scratch database and checked by the security rules
    declared_files_admitted: bool = False  # read and admitted (lint --no-database: without the build)

    def to_dict(self) -> dict:
        report: dict = {"declared state": []} if self.declared_state_checked else {}
        report |= {path: [] for path in self.plans_checked}
        for f in self.findings:
            if f.statement is None:
                report[f.source].append({"rule": f.rule, "object": f.object, "message": f.message})
            else:
                report[f.source].append({"statement": f.statement, "rule": f.rule, "message": f.message,
                                         "help": f.help})
        return report


@dataclasses.dataclass(frozen=True)
class PolicyTestReport:
    outcomes: tuple[Outcome, ...]

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)

    def to_dict(self) -> list:
        return [dataclasses.asdict(o) for o in self.outcomes]


@dataclasses.dataclass(frozen=True)
class StatusReport:
    target: str
    applied: tuple[HistoryEntry, ...]
    pending: tuple[str, ...]
    edited_since_rehearsal: dict  # pending plan name -> why apply would refuse it
    migrations_dir: str = "migrations"
    # History id -> how many data steps that apply ran; None when the target's record is not readable.
    data_steps_ran: dict | None = dataclasses.field(default_factory=dict)
    unfinished: tuple = ()  # deploy.unfinished.UnfinishedApply: pending plans an apply began

    def to_dict(self) -> dict:
        return {
            "applied": [{"plan_file": e.plan_file, "applied_at": e.applied_at.isoformat(), "applied_by": e.applied_by,
                         "applied_as": e.applied_as, "git_commit": e.git_commit, "duration_ms": e.duration_ms,
                         "data_steps_ran": None if self.data_steps_ran is None else self.data_steps_ran.get(e.id, 0)}
                        for e in self.applied],
            "pending": list(self.pending),
            "edited_since_rehearsal": dict(self.edited_since_rehearsal),
            "unfinished": [u.to_dict() for u in self.unfinished],
        }


@dataclasses.dataclass(frozen=True)
class PullResult:
    """What `pull` wrote: the declared files, from the target's schema, so that a plan then finds no
    changes. Paths are relative to the project folder."""

    target: str
    as_of: str  # the date that placed the partition specs' windows
    written: tuple[str, ...]  # created or overwritten
    unchanged: tuple[str, ...]  # already holding what pull would write (left untouched)
    removed: tuple[str, ...]  # stale declared files removed (--force)
    extensions_found: tuple[str, ...]  # installed in the managed schemas; pull writes no CREATE EXTENSION
    extensions_unlisted: tuple[str, ...]  # of those, the ones missing from extensions: in reconcile.yaml
    notes: tuple[str, ...]  # what was left out or kept as SQL, and why

    def to_dict(self) -> dict:
        return {f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
                for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class CheckFailure:
    kind: str  # "not-planned", "does-not-apply", "checksum", "same-timestamp", "different-bases", "squawk", "lint"
    subject: str  # what is at fault, as the user names it: "migrations/<file>.sql", "schema/<file>.sql", or an object
    message: str  # the one line, naming the command that fixes it


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What `check` found: the committed plans replayed on a scratch database (from the newest baseline,
    if any) and compared with the declared state; ok when nothing failed."""

    plans_replayed: tuple[str, ...]  # plan file names, in the order replayed
    baseline: str | None  # the baseline the replay started from, if any
    statements_replayed: int
    failures: tuple[CheckFailure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"ok": self.ok, "plans_replayed": list(self.plans_replayed), "baseline": self.baseline,
                "statements_replayed": self.statements_replayed,
                "failures": [dataclasses.asdict(f) for f in self.failures]}
