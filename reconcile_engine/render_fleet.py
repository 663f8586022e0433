"""Rendering of a command run across targets (fleet.FleetReport): one summary table, as text or as
markdown (JSON is the report's to_dict, like every result's). render.py dispatches here."""

from __future__ import annotations

from .errors import EXIT_INTERNAL
from .fleet import CHANGES, ERROR, NOT_RUN, OK, FleetReport
from .render_markdown import escape

_HEADER = ("target", "group", "outcome", "summary")


def fleet(report: FleetReport, *, markdown: bool) -> str:
    rows = [(row.name, row.group, "bug" if row.exit_code == EXIT_INTERNAL else row.outcome, row.summary)
            for row in report.rows]
    if markdown:
        lines = ["| " + " | ".join(_HEADER) + " |", "|" + " --- |" * len(_HEADER),
                 *("| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows)]
    else:
        widths = [max(len(cell) for cell in column) for column in zip(_HEADER, *rows)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                 for row in (_HEADER, *rows)]
    counts = ", ".join(f"{report.count(outcome)} {outcome}" for outcome in (OK, CHANGES, ERROR, NOT_RUN)
                       if report.count(outcome))
    shard = f" (shard {report.shard})" if report.shard else ""
    lines += ["", f"{report.command}: {len(report.rows)} target(s){shard}: {counts or 'none'}; "
                  f"exit {report.exit_code}"]
    return "\n".join(lines)
