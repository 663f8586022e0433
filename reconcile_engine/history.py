"""Stage 9: the history of applied plans, in the tool's own schema on the target."""

from __future__ import annotations

import dataclasses
import datetime as dt

from .config import TOOL_SCHEMA

TABLE = f"{TOOL_SCHEMA}.history"

_CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {TOOL_SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_file           text NOT NULL UNIQUE,
    plan_sha256         text NOT NULL,
    fingerprint_before  text NOT NULL,
    fingerprint_after   text NOT NULL,
    git_commit          text,
    applied_at          timestamptz NOT NULL DEFAULT now(),
    applied_by          text NOT NULL,
    duration_ms         integer NOT NULL,
    statement_count     integer NOT NULL,
    tool_version        text NOT NULL
);
"""


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    plan_file: str
    plan_sha256: str
    fingerprint_before: str
    fingerprint_after: str
    git_commit: str | None
    applied_at: dt.datetime
    applied_by: str
    duration_ms: int


def ensure_table(cur) -> None:
    cur.execute(_CREATE)


def read(cur) -> list[HistoryEntry]:
    """Applied plans, oldest first; empty when the target has never been applied to."""
    cur.execute("SELECT to_regclass(%s)", (TABLE,))
    if cur.fetchone()[0] is None:
        return []
    cur.execute(
        f"SELECT plan_file, plan_sha256, fingerprint_before, fingerprint_after, git_commit, applied_at, "
        f"applied_by, duration_ms FROM {TABLE} ORDER BY id"
    )
    return [HistoryEntry(*row) for row in cur.fetchall()]


def record(cur, *, plan_file, plan_sha256, fingerprint_before, fingerprint_after, git_commit,
           applied_by, duration_ms, statement_count, tool_version) -> None:
    cur.execute(
        f"INSERT INTO {TABLE} (plan_file, plan_sha256, fingerprint_before, fingerprint_after, git_commit, "
        f"applied_by, duration_ms, statement_count, tool_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (plan_file, plan_sha256, fingerprint_before, fingerprint_after, git_commit, applied_by, duration_ms,
         statement_count, tool_version),
    )
