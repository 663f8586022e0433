"""Stage 5b: squawk's findings on a plan's statements (squawk-cli from PyPI, run as a process).

apply already sets lock_timeout and statement_timeout and runs each plan in one transaction, so the
rules about those are left out; so are rules about locking a table that the same plan creates.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import LintError
from ..planning.hazards import target_table

# Handled by apply itself: timeouts are set per transaction, and a failed plan rolls back whole.
HANDLED_BY_APPLY = ("require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts",
                    "require-timeout-settings", "transaction-nesting")
# Rules about locking or rewriting a live table: moot for a table created earlier in the same plan.
LIVE_TABLE_RULES = {
    "require-concurrent-index-creation", "require-concurrent-index-deletion", "adding-required-field",
    "adding-not-nullable-field", "adding-field-with-default", "adding-foreign-key-constraint",
    "constraint-missing-not-valid", "disallowed-unique-constraint", "changing-column-type",
    "adding-serial-primary-key-field", "ban-concurrent-index-creation-in-transaction",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    statement: int  # 1-based index into the statements
    rule: str
    message: str
    help: str
    level: str = "Warning"  # squawk's: "Error" (a statement it cannot parse, say) or "Warning"

    def describe(self) -> str:
        return f"{self.rule}: {self.message}" + (f" ({self.help})" if self.help else "")


def squawk_path() -> str:
    found = shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")
    if not os.path.exists(found):
        raise LintError("squawk is not installed (pip install squawk-cli)")
    return found


# squawk holds its whole input's syntax tree: about 20 times the SQL's size (160 MB for the 8 MB a
# plan from empty writes at 10,000 tables). It is run on pieces of about this size, one after another.
# No rule it runs looks across statements (those about transactions and timeouts are excluded above,
# and "a table created earlier in the plan" is judged below, over the whole plan), so the pieces
# give the findings one run would.
PIECE_BYTES = 512 * 1024


def squawk(statements, pg_major: int | None = None, piece_bytes: int = PIECE_BYTES) -> list[Finding]:
    """Run squawk over all of a plan's statements (operations, with their facts), in pieces of about
    `piece_bytes` of SQL; findings are mapped back to the statement they concern."""
    if not statements:
        return []
    command = [squawk_path(), "--reporter", "json"]
    if pg_major:
        command.append(f"--pg-version={pg_major}.0")
    command.append("--exclude=" + ",".join(HANDLED_BY_APPLY))
    starts, lines = [], []  # the first line of each statement; the lines of the piece under way
    raw, piece_start, size = [], 0, 0
    for statement in statements:
        if size >= piece_bytes:
            raw += _run(command, lines, piece_start)
            piece_start, lines, size = piece_start + len(lines), [], 0
        text = statement.sql.strip()
        starts.append(piece_start + len(lines))
        lines += (text if text.endswith(";") else text + ";").splitlines()
        size += len(text)
    raw += _run(command, lines, piece_start)
    created_by: dict[str, int] = {}  # table -> index of the statement that creates it
    for index, statement in enumerate(statements):
        for table in statement.facts.creates:
            created_by.setdefault(table, index)
    findings = []
    for item in raw:
        index = bisect.bisect_right(starts, item["line"]) - 1
        if item.get("rule_name") in LIVE_TABLE_RULES and \
                created_by.get(target_table(statements[index].facts), index) < index:
            continue  # a table an earlier statement created is new and empty
        findings.append(Finding(index + 1, item.get("rule_name", "?"), item.get("message", ""), item.get("help") or "",
                                item.get("level") or "Warning"))
    return findings


def _run(command: list[str], lines: list[str], first_line: int) -> list[dict]:
    """squawk's findings on one piece, each with its line numbered as in the whole plan."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
        path = handle.name
    try:
        result = subprocess.run([*command, path], capture_output=True, text=True, timeout=120)
        raw = json.loads(result.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        raise LintError(f"squawk failed: {exc}") from exc
    finally:
        os.unlink(path)
    return [item | {"line": item.get("line", 0) + first_line} for item in raw]
