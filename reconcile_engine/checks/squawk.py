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


def squawk(statements, pg_major: int | None = None) -> list[Finding]:
    """Run squawk once over all of a plan's statements (operations, with their facts); findings are
    mapped back to the statement they concern."""
    if not statements:
        return []
    starts, lines = [], []
    for statement in statements:
        sql = statement.sql
        starts.append(len(lines))
        text = sql.strip()
        lines += (text if text.endswith(";") else text + ";").splitlines()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
        path = handle.name
    command = [squawk_path(), "--reporter", "json"]
    if pg_major:
        command.append(f"--pg-version={pg_major}.0")
    command += ["--exclude=" + ",".join(HANDLED_BY_APPLY), path]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        raw = json.loads(result.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        raise LintError(f"squawk failed: {exc}") from exc
    finally:
        os.unlink(path)
    created_by: dict[str, int] = {}  # table -> index of the statement that creates it
    for index, statement in enumerate(statements):
        for table in statement.facts.creates:
            created_by.setdefault(table, index)
    findings = []
    for item in raw:
        index = bisect.bisect_right(starts, item.get("line", 0)) - 1
        if item.get("rule_name") in LIVE_TABLE_RULES and \
                created_by.get(target_table(statements[index].facts), index) < index:
            continue  # a table an earlier statement created is new and empty
        findings.append(Finding(index + 1, item.get("rule_name", "?"), item.get("message", ""), item.get("help") or "",
                                item.get("level") or "Warning"))
    return findings
