"""Rendering of the API's results (results.py) for the command line: text, JSON, or markdown (a pull
request comment). Pure functions from a result to a string; the CLI prints them."""

from __future__ import annotations

import json

from . import render_fleet, render_markdown, render_prometheus
from .fleet import FleetReport
from .planning import planfile
from .results import (
    ApplyResult, CheckReport, DriftReport, LintReport, MaintainResult, NewProject, PlanResult, PolicyTestReport,
    PullResult,
    RepairResult, RollbackResult, StatusReport,
)
from .inspection.security_drift import SECURITY

FORMATS = ("text", "json", "markdown", "prometheus")
PROMETHEUS_COMMANDS = ("drift",)  # the commands whose result --format prometheus renders


def render(result, format: str, **context) -> str:
    """The result as `format`. context: what the text needs beyond the result (plan: project_dir,
    written; lint: plans_given)."""
    if format == "json":
        return json.dumps(result.to_dict(), indent=2)
    if format == "prometheus":
        return render_prometheus.drift(result)
    if format == "markdown" and type(result) in _MARKDOWN:
        return _MARKDOWN[type(result)](result, **context)
    renderer = _RENDERERS[type(result)]
    return renderer(result, markdown=format == "markdown", **context)


def warnings(result, project_dir=None) -> list[str]:
    """Lines for standard error: the security lint's findings, and a reset approval (its plan file named
    from the project folder, as the user names it)."""
    lines = [f"warning: {w}" for w in getattr(result, "lint_warnings", ())]
    if isinstance(result, PlanResult) and result.approval_reset:
        shown = result.file.relative_to(project_dir) if project_dir else result.file
        lines.append(f"warning: {shown}: '-- {planfile.APPROVAL_KEY}:' was "
                     f"reset to no: its statements changed since the destructive ones were approved")
    return lines


def _plan(result: PlanResult, *, markdown: bool, project_dir=None, written: str = "wrote") -> str:
    if result.plan is None:
        if result.changed_since_last_apply:
            verdict = ("No changes: the target matches the declared files (it changed since the last apply; "
                       "drift is reconciled).")
        else:
            verdict = "No changes: the target matches the declared state."
        return verdict + _ignored(result.ignore)
    where = result.file.relative_to(project_dir) if result.file and project_dir else result.file
    return "\n".join([
        planfile.render(result.plan),
        f"-- rehearsed on a copy of {result.target}: converged",
        f"-- {written} {where if where else 'nothing (--dry-run)'}",
    ])


def _apply(result: ApplyResult, *, markdown: bool) -> str:
    if not result.applied:
        return f"Nothing to apply: {result.already_applied} plan(s) already applied to {result.target}."
    bullet = "- " if markdown else ""
    lines = []
    for a in result.applied:
        lines.append(f"{bullet}applied {a.name}: {a.statements} statements in {a.duration_ms} ms"
                     + (f", {a.data_steps_ran} data step(s) run" if a.data_steps_ran else ""))
        lines += [f"{'  - ' if markdown else '  '}{s.describe()}" for s in a.skipped_data_steps]
    return "\n".join(lines)


def _rollback(result: RollbackResult, *, markdown: bool) -> str:
    done = result.rolled_back
    return (f"rolled back {done.name}: {done.statements} statements in {done.duration_ms} ms. It is pending again: "
            f"remove it from {result.migrations_dir}/ (git revert), or fix the declared files and plan anew.")


def _repair(result: RepairResult, *, markdown: bool) -> str:
    left = result.repair
    bullet = "- " if markdown else "  "
    lines = [f"{left.plan} on {result.target}: an apply began and did not finish. Its steps:"]
    lines += [f"{bullet}{s.number}. {'committed' if s.committed else 'not done'}: {s.description}" for s in left.steps]
    if left.found_fingerprint == left.expected_fingerprint:
        lines.append("The target is where the plan promised to end (fingerprint "
                     f"{left.found_fingerprint[:19]}…).")
    else:
        lines.append(f"The target is not where the plan promised to end (fingerprint {left.found_fingerprint[:19]}…, "
                     f"promised {left.expected_fingerprint[:19]}…).")
    lines += _section("It differs from the declared files in (the next 'reconcile plan' covers these):",
                      result.differences, bullet) or ["It matches the declared files."]
    if left.recorded:
        lines.append(f"\nRecorded {left.plan} as applied with what it left: 'reconcile apply' no longer resumes it; "
                     f"run 'reconcile plan' for the rest.")
    else:
        lines.append(f"\nNothing recorded: run 'reconcile repair {left.plan} --yes' to record it as applied with what "
                     f"it left (its unfinished steps are given up), then 'reconcile plan'.")
    return "\n".join(lines)


def _policy_tests(result: PolicyTestReport, *, markdown: bool) -> str:
    lines = [f"{'ok  ' if o.passed else 'FAIL'} {o.file}: {o.test}" + (f"\n     {o.detail}" if o.detail else "")
             for o in result.outcomes]
    lines.append(f"{len(result.outcomes) - len(result.failed)} passed, {len(result.failed)} failed")
    return "\n".join(lines)


def _maintain(result: MaintainResult, *, markdown: bool) -> str:
    lines = []
    if result.created:
        moved = f", moving {result.moved_rows} row(s) out of the DEFAULT partition" if result.moved_rows else ""
        lines.append(f"created {len(result.created)} partition(s): {', '.join(result.created)}{moved}")
    if result.detached:
        lines.append(f"detached {len(result.detached)} expired partition(s) into the archive schema, rows kept: "
                     f"{', '.join(result.detached)}")
    if not lines:
        lines.append(f"Nothing to do: every current and upcoming partition exists on {result.target}.")
    return "\n".join(lines)


def _lint(result: LintReport, *, markdown: bool) -> str:
    if not result.findings:
        checked = ("the declared state and " if result.declared_state_checked else
                   "the declared files (admitted; no database, no security rules) and "
                   if result.declared_files_admitted else "")
        return (f"No findings in {checked}"
                f"{len(result.plans_checked)} plan(s).")
    return "\n".join(("- " if markdown else "") + f.describe() for f in result.findings)


def _section(title: str, lines, bullet: str) -> list[str]:
    return [f"\n{title}"] + [f"{bullet}{line}" for line in lines] if lines else []


def _drift(report: DriftReport, *, markdown: bool) -> str:
    if report.in_sync:
        reconciled = (f"\nChanged since the last apply (fingerprint {report.fingerprint[:19]}…, last applied "
                      f"{report.last_applied_fingerprint[:19]}…); matches the declared files: reconciled."
                      if report.changed_outside_reconcile else "")
        return (f"In sync: {report.target} matches the declared state (as of {report.as_of}).{reconciled}"
                + _ignored(report.ignore))
    bullet = "  - "  # markdown: render_markdown.drift
    security = [d.description for d in report.differences if d.severity == SECURITY]
    # Weakened tenant isolation comes before everything else: its first lines (a pager greps for them).
    out = [f"SECURITY: {line}" for line in security]
    out.append(f"Drift: {report.target} does not match the declared state (as of {report.as_of}).")
    out += _section("Applies that began and did not finish (part of the differences are their committed steps):",
                    report.unfinished_applies, bullet)
    if report.pending_plans:
        explained = " (they account for every difference)" if report.pending_plans_explain_differences else ""
        out += _section(f"Reviewed plans not yet applied{explained}:", report.pending_plans, bullet)
    if report.changed_outside_reconcile:
        out.append("\nChanged outside reconcile since the last apply "
                   f"(fingerprint {report.fingerprint[:19]}…, last applied {report.last_applied_fingerprint[:19]}…).")
    out += _section("Partitions missing ('reconcile maintain' creates the current and upcoming ones):",
                    report.missing_partitions, bullet)
    out += _section("Rows in a DEFAULT partition that a declared partition should hold:", report.stranded_rows, bullet)
    out += _section("Differences (target vs declared):",
                    [d.description for d in report.differences if d.severity != SECURITY], bullet)
    if report.fix_sql:
        out.append("\nSQL that would bring the target to the declared state (run 'reconcile plan' to get a reviewed plan):")
        out += ["  " + sql.replace("\n", "\n  ") for sql in report.fix_sql]
    out.append(f"\nNot compared: {'; '.join(report.not_compared)}.")
    return "\n".join(out)


def _ignored(globs) -> str:
    """An in-sync verdict still says what it did not look at, when reconcile.yaml ignores objects."""
    return f"\nNot compared (ignore: in reconcile.yaml): objects matching {', '.join(globs)}." if globs else ""


def _status(report: StatusReport, *, markdown: bool) -> str:
    bullet = "- " if markdown else "  "
    out = [f"Target: {report.target}", f"Applied ({len(report.applied)}):"]
    out += [f"{bullet}{e.plan_file}  {e.applied_at:%Y-%m-%d %H:%M:%S %Z}  by {e.applied_by}"
            f"{'  as role ' + e.applied_as if e.applied_as else ''}"
            f"{'  at ' + e.git_commit[:12] if e.git_commit else ''}"
            f"{f'  {ran} data step(s) run' if (ran := (report.data_steps_ran or {}).get(e.id)) else ''}"
            for e in report.applied]
    out.append(f"Pending ({len(report.pending)}):")
    unfinished = {u.plan: u for u in report.unfinished}
    for name in report.pending:
        edited = report.edited_since_rehearsal.get(name)
        out.append(f"{bullet}{name}" + (f"  (apply refuses it: {edited}; run 'reconcile rehearse "
                                        f"{report.migrations_dir}/{name}')" if edited else ""))
        if name in unfinished:
            out.append(f"{bullet}  {unfinished.pop(name).describe().split(': ', 1)[1]}")
    out += [f"{bullet}{u.describe()}" for u in unfinished.values()]  # plan files no longer under migrations/
    return "\n".join(out)


def _new_project(result: NewProject, *, markdown: bool) -> str:
    bullet = "- " if markdown else "  "
    gitignore = {"created": ".gitignore (ignores .reconcile/)", "appended": ".gitignore: .reconcile/ added",
                 "unchanged": ".gitignore already ignores .reconcile/"}[result.gitignore]
    return "\n".join([f"Created a reconcile project ({result.preset}) in {result.folder}:",
                      *(f"{bullet}{path}" for path in (*result.written, gitignore)),
                      "Next: declare your tables in schema/ (policies in policies/, views in views/), "
                      "review reconcile.yaml, then run 'reconcile plan'."])


def _pull(result: PullResult, *, markdown: bool) -> str:
    bullet = "- " if markdown else "  "
    lines = [f"Pulled the schema of {result.target} (partition windows as of {result.as_of}): "
             f"{len(result.written)} file(s) written, {len(result.unchanged)} unchanged, {len(result.removed)} removed."]
    lines += [f"{bullet}wrote {path}" for path in result.written]
    lines += [f"{bullet}removed {path}" for path in result.removed]
    if result.extensions_unlisted:
        lines.append(f"Extensions in the managed schemas: {', '.join(result.extensions_unlisted)}: list them under "
                     f"extensions: in reconcile.yaml (pull writes no CREATE EXTENSION), or plan cannot build the "
                     f"declared state.")
    lines += [f"{bullet}note: {note}" for note in result.notes]
    lines.append("Next: 'reconcile plan' should find no changes and 'reconcile drift' report in sync; review the "
                 "files and commit them.")
    return "\n".join(lines)


# Results whose markdown is a pull request comment of its own (render_markdown.py).
_MARKDOWN = {PlanResult: render_markdown.plan, DriftReport: render_markdown.drift,
             CheckReport: render_markdown.check}

def _check(result: CheckReport, *, markdown: bool) -> str:
    start = f"from {result.baseline}, then " if result.baseline else "from an empty database: "
    replayed = (f"replayed {start}{len(result.plans_replayed)} plan(s), {result.statements_replayed} statement(s)")
    if result.ok:
        return f"check passed: {replayed}; they reach the declared state."
    return "\n".join([*(f.message for f in result.failures),
                      f"check failed: {len(result.failures)} failure(s); {replayed}."])


_RENDERERS = {
    CheckReport: _check,
    NewProject: _new_project,
    PlanResult: _plan, ApplyResult: _apply, RollbackResult: _rollback, RepairResult: _repair, PolicyTestReport: _policy_tests,
    MaintainResult: _maintain, LintReport: _lint, DriftReport: _drift, StatusReport: _status,
    PullResult: _pull,
    FleetReport: render_fleet.fleet,
}
