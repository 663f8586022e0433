"""Beside the commands: one command across a fleet of targets (targets: in reconcile.yaml, chosen by
fleet_targets.py), run in a bounded pool of threads through the public API (drift, status, maintain,
apply; apply in waves, stopping at the first failure), and one FleetReport with a row per target;
render_fleet.py renders it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import psycopg2

from . import api
from .config import TargetSpec
from .connections import first_line, redact
from .errors import (
    EXIT_CHANGES, EXIT_ERROR, EXIT_INTERNAL, EXIT_OK, ApplyInterruptedError, ReconcileError, UsageError, interruption,
)
from .fleet_targets import DEFAULT_PARALLEL, FLEET_COMMANDS, MOST_PARALLEL, Shard, target_url
from .inspection.security_drift import SECURITY
from .project import Project
from .version import __version__

# A row's outcome. "changes" is drift's verdict (exit 2); apply and maintain that changed something are "ok".
OK, CHANGES, ERROR, NOT_RUN = "ok", "changes", "error", "not run"

# (target name, progress line) -> None: where a target's apply or maintain says what it does.
TargetProgress = Callable[[str, str], None]


@dataclasses.dataclass(frozen=True)
class TargetRow:
    """One target's part of a FleetReport."""

    name: str
    group: str
    outcome: str  # OK, CHANGES, ERROR or NOT_RUN
    exit_code: int | None  # what the command alone would have exited with (None: not run)
    summary: str  # one line
    result: object | None = None  # the command's own result (DriftReport, ...) when it ran to its end
    error: str | None = None  # the whole message, when outcome is ERROR
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "outcome": self.outcome, "exit_code": self.exit_code,
                "summary": self.summary, "error": self.error, "details": list(self.details),
                "result": self.result.to_dict() if self.result is not None else None}


@dataclasses.dataclass(frozen=True)
class FleetReport:
    """A command run across targets: a row per target, in the order they ran (apply: wave by wave)."""

    command: str
    rows: tuple[TargetRow, ...]
    shard: str | None = None  # "I/N" when one shard of the targets ran
    parallel: int = DEFAULT_PARALLEL

    @property
    def exit_code(self) -> int:
        """3 if a target hit a bug, else 1 if any failed (or was not run), else 2 on drift, else 0."""
        outcomes = {row.outcome for row in self.rows}
        if any(row.exit_code == EXIT_INTERNAL for row in self.rows):
            return EXIT_INTERNAL
        if outcomes & {ERROR, NOT_RUN}:
            return EXIT_ERROR
        return EXIT_CHANGES if CHANGES in outcomes else EXIT_OK

    def count(self, outcome: str) -> int:
        return sum(row.outcome == outcome for row in self.rows)

    def to_dict(self) -> dict:
        return {"command": self.command, "shard": self.shard, "parallel": self.parallel, "exit_code": self.exit_code,
                "counts": {outcome: self.count(outcome) for outcome in (OK, CHANGES, ERROR, NOT_RUN)},
                "targets": [row.to_dict() for row in self.rows]}


def run_across(project: Project, command: str, targets: tuple[TargetSpec, ...], parallel: int = DEFAULT_PARALLEL,
               *, shard: Shard | None = None, on_progress: TargetProgress | None = None, **options) -> FleetReport:
    """Run `command` (drift, status, maintain or apply, with its API options) on each target, at most
    `parallel` at once. A target's ReconcileError becomes its error row, never the fleet's. apply runs
    the config's waves in order and starts nothing after the first failure. Ctrl-C or SIGTERM
    (KeyboardInterrupt) starts no further target, lets the running ones finish, and propagates."""
    if command not in FLEET_COMMANDS:
        raise UsageError(f"--all-targets is for {', '.join(FLEET_COMMANDS)} only, not {command}")
    if not 1 <= parallel <= MOST_PARALLEL:
        raise UsageError(f"--parallel: expected a whole number from 1 to {MOST_PARALLEL}, got {parallel}")

    def run_one(target: TargetSpec) -> TargetRow:
        return _run_target(project, command, target, options, on_progress)

    done: dict[str, TargetRow] = {}  # by target name, filled as targets finish
    try:
        if command == "apply":
            # reconcile.yaml's waves name every group; a caller's own targets may bring others: they go last.
            waves = project.config.waves + tuple(g for g in dict.fromkeys(t.group for t in targets)
                                                 if g not in project.config.waves)
            order = _in_waves(waves, targets, run_one, parallel, done)
        else:
            if command in ("drift", "maintain"):
                # The first target builds the declared state alone and caches it (scratch/desired_cache.py):
                # the others, alike in server version and privileges, then only read their catalogs.
                _pool(targets[:1], run_one, 1, done, stop_at_error=False)
            _pool(targets, run_one, parallel, done, stop_at_error=False)
            order = list(targets)
    except KeyboardInterrupt as exc:
        if command in ("apply", "maintain"):  # what changed where, as an apply that stops says it
            raise ApplyInterruptedError(_stopped(command, exc, targets, done)) from exc
        raise
    return FleetReport(command, tuple(done[t.name] for t in order), str(shard) if shard else None, parallel)


def _in_waves(waves: tuple[str, ...], targets, run_one, parallel: int, done: dict) -> list[TargetSpec]:
    """Each wave's targets in turn; after the first failure, the rest are given not-run rows in `done`."""
    order, failed = [], None
    for group in waves:
        wave = [t for t in targets if t.group == group]
        order += wave
        if failed is None:
            failed = _pool(wave, run_one, parallel, done, stop_at_error=True)
        done |= {t.name: TargetRow(t.name, t.group, NOT_RUN, None, f"not run (wave stopped: {failed} failed)")
                 for t in wave if failed is not None and t.name not in done}
    return order


def _pool(targets, run_one, parallel: int, done: dict, *, stop_at_error: bool) -> str | None:
    """Run the targets not yet in `done`, in order, at most `parallel` at once, putting each one's row in
    `done`; with stop_at_error, start none after the first that fails (the running ones finish).
    Returns the name of the first that failed."""
    waiting, running, failed, interrupted = [t for t in targets if t.name not in done], {}, None, None
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="reconcile-target") as pool:
        try:
            while waiting or running:
                while waiting and len(running) < parallel and not (stop_at_error and failed):
                    target = waiting.pop(0)
                    running[pool.submit(run_one, target)] = target
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    row = done[running.pop(future).name] = future.result()
                    if row.outcome == ERROR and failed is None:
                        failed = row.name
        except KeyboardInterrupt as exc:
            waiting.clear()  # no new target starts; leaving the pool waits for the running ones
            interrupted = exc
    if interrupted is not None:
        # The targets that ran to their end while the pool stopped are said too.
        done |= {target.name: future.result() for future, target in running.items()
                 if not future.cancelled() and future.exception() is None}
        raise interrupted
    return failed


def _stopped(command: str, interrupt: KeyboardInterrupt, targets, done: dict) -> str:
    def some(names) -> str:
        return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "") or "none"

    ran = [row for row in done.values() if row.outcome != NOT_RUN]
    finished = some([row.name for row in ran if row.outcome != ERROR])
    failed = some([row.name for row in ran if row.outcome == ERROR])
    not_started = some([t.name for t in targets if t.name not in done or done[t.name].outcome == NOT_RUN])
    return (f"{interruption(interrupt)}: '{command} --all-targets' finished on {finished}, failed on {failed}, and "
            f"started no other target (not started: {not_started}): run 'reconcile {command} --all-targets' again")


def _run_target(project: Project, command: str, target: TargetSpec, options: dict,
                on_progress: TargetProgress | None) -> TargetRow:
    def error(message: str, exit_code: int, details=()) -> TargetRow:
        message = redact(message.strip())
        return TargetRow(target.name, target.group, ERROR, exit_code, (message.splitlines() or [""])[0], error=message,
                         details=tuple(redact(line) for line in details))

    if command in ("apply", "maintain"):
        options = options | {"on_progress": (lambda line: on_progress(target.name, line)) if on_progress
                             else (lambda line: None)}
    try:
        result = getattr(api, command)(project, target_url(target), **options)
    except ReconcileError as exc:
        return error(str(exc), exc.exit_code, exc.details)
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        return error(f"the connection to the database was lost ({first_line(exc)}); '{command}' stopped on this "
                     f"target before its end: run it again", EXIT_ERROR)
    except Exception as exc:  # a bug: said as one, never as a refusal
        return error(f"internal error: {type(exc).__name__}: {first_line(exc)}; "
                     f"this is a bug in reconcile {__version__}, not a refusal; please report it with the output "
                     f"of 'reconcile {command} --target {target.name} --verbose'", EXIT_INTERNAL)
    outcome, exit_code, summary = _SUMMARIES[command](result)
    return TargetRow(target.name, target.group, outcome, exit_code, summary, result)


def _drift_summary(report) -> tuple[str, int, str]:
    if report.in_sync:
        return OK, EXIT_OK, "in sync"
    security = sum(d.severity == SECURITY for d in report.differences)
    parts = [f"{len(report.differences)} difference(s)" + (f", {security} weakening security" if security else ""),
             f"{len(report.pending_plans)} plan(s) pending", f"{len(report.missing_partitions)} partition(s) missing",
             f"{report.stranded_row_count} row(s) in a DEFAULT partition"]
    return CHANGES, EXIT_CHANGES, "drift: " + (", ".join(p for p in parts if not p.startswith("0 ")) or "differs")


def _status_summary(report) -> tuple[str, int, str]:
    parts = [f"{len(report.applied)} applied", f"{len(report.pending)} pending"]
    if report.edited_since_rehearsal:
        parts.append(f"{len(report.edited_since_rehearsal)} edited since rehearsal (apply refuses them)")
    if report.unfinished:
        parts.append(f"{len(report.unfinished)} apply began and did not finish")
    return OK, EXIT_OK, ", ".join(parts)


def _maintain_summary(result) -> tuple[str, int, str]:
    parts = [f"created {', '.join(result.created)}" if result.created else "",
             f"detached {', '.join(result.detached)}" if result.detached else ""]
    return OK, EXIT_OK, "; ".join(p for p in parts if p) or "nothing to do"


def _apply_summary(result) -> tuple[str, int, str]:
    if not result.applied:
        return OK, EXIT_OK, f"nothing to apply ({result.already_applied} plan(s) already applied)"
    return OK, EXIT_OK, f"applied {len(result.applied)} plan(s): {', '.join(a.name for a in result.applied)}"


_SUMMARIES = {"drift": _drift_summary, "status": _status_summary, "maintain": _maintain_summary,
              "apply": _apply_summary}
