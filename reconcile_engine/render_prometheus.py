"""Stage 8 (report): a drift report as Prometheus gauges, in the text exposition format that
node-exporter's textfile collector reads (`reconcile drift --format prometheus > reconcile.prom`).

Written by hand: a dozen lines of a stable format, not worth a dependency. Label values come from the
configuration and the database (a target's name, an object kind), so they are escaped as the format
says: backslash, double quote and newline.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from .results import DriftReport


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, help_text: str, samples: list[tuple[dict, int]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        shown = ",".join(f'{key}="{_label(text)}"' for key, text in labels.items())
        lines.append(f"{name}{{{shown}}} {value}")
    return lines


def drift(report: DriftReport, now: dt.datetime | None = None) -> str:
    target = {"target": report.target}
    by_kind = Counter(d.kind for d in report.differences)
    age = []
    if report.last_plan_applied_at:
        applied = dt.datetime.fromisoformat(report.last_plan_applied_at)
        age = [(target, round(((now or dt.datetime.now(dt.timezone.utc)) - applied).total_seconds()))]
    lines = [
        *_family("reconcile_drift_in_sync", "1 when the target matches the declared files and no plan is pending "
                 "(reconcile drift exits 0), else 0.", [(target, int(report.in_sync))]),
        *_family("reconcile_drift_objects", "Differences between the target and the declared state, by object kind "
                 "(only kinds that differ are listed).",
                 [(target | {"kind": kind}, count) for kind, count in sorted(by_kind.items())]),
        *_family("reconcile_drift_security", "1 when a difference weakens tenant isolation (row level security, a "
                 "policy, a grant over a table with row level security), else 0.",
                 [(target, int(report.security_drift))]),
        *_family("reconcile_missing_partitions", "Declared partitions the target lacks ('reconcile maintain' "
                 "creates the current and upcoming ones).", [(target, len(report.missing_partitions))]),
        *_family("reconcile_stranded_rows", "Rows in a DEFAULT partition that a declared partition should hold.",
                 [(target, report.stranded_row_count)]),
        *_family("reconcile_pending_plans", "Reviewed plans under migrations/ not yet applied to the target.",
                 [(target, len(report.pending_plans))]),
        *_family("reconcile_unfinished_applies", "Applies that began and did not finish ('reconcile apply' "
                 "resumes them, 'reconcile repair' keeps what they left).", [(target, len(report.unfinished_applies))]),
        *_family("reconcile_last_apply_age_seconds", "Seconds since the last reviewed plan was applied to the target "
                 "(no sample: none ever was).", age),
    ]
    return "\n".join(lines)
