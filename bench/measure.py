"""Bench plumbing: run one command under a stopwatch, sample the memory of it and its children, and
check that it did what the call site expected (exit code and output) before its time counts."""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-06-01"
SAMPLE_EVERY_S = 0.02

# Printed by reconcile (reconcile_engine/render.py) when a command did what the bench times it for.
PLANNED = ("-- rehearsed on a copy of", ": converged")
NO_CHANGES = ("No changes: the target matches",)
IN_SYNC = ("In sync: ",)
APPLIED = ("applied ",)


@dataclasses.dataclass(frozen=True)
class Measured:
    """One run of one command."""

    command: tuple[str, ...]
    seconds: float
    stdout: str
    stderr: str
    exit_code: int
    peak_rss: int  # bytes: the command's process and all its children, summed at each sample (PSS, see _tree_memory)

    @property
    def peak_mb(self) -> float:
        return self.peak_rss / 2**20

    def tail(self, lines: int = 25) -> str:
        """The last lines of what it printed, for a failure message."""
        def last(text):
            return "\n".join(text.rstrip().splitlines()[-lines:]) or "(nothing)"
        return f"--- stdout (last {lines} lines):\n{last(self.stdout)}\n--- stderr (last {lines} lines):\n{last(self.stderr)}"


class BenchFailure(Exception):
    """A timed command did not do what the bench times it for: its figure would be a lie."""

    def __init__(self, reason: str, measured: Measured):
        super().__init__(redacted(f"{reason}\ncommand: {shown(measured.command)}\nexit code: {measured.exit_code}\n"
                                  f"{measured.tail()}"))
        self.measured = measured


def shown(command: Sequence[str]) -> str:
    return " ".join(str(part) for part in command)


def redacted(text: str) -> str:
    """Without the passwords of the URLs in it (the bench server's, or a target's)."""
    from reconcile_engine.connections import redact

    return redact(text)


CHECKPOINT_BEFORE = {"admin": None}


def settle() -> None:
    """A checkpoint before each measurement: the thousands of files an earlier step created are
    written out now, not in the middle of the next measurement (the figures vary far less)."""
    if CHECKPOINT_BEFORE["admin"]:
        sql(CHECKPOINT_BEFORE["admin"], "CHECKPOINT")


# Left out of every timed command's environment. DATABASE_URL: a command's target is the one its
# arguments or project name, never one left in the shell that started the bench. PYTHONDONTWRITEBYTECODE:
# an installed package runs from compiled bytecode; without it each command would compile the engine
# again (tens of milliseconds that no user pays).
NOT_PASSED_ON = ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")


def command_env() -> dict:
    """The environment of every timed command (see NOT_PASSED_ON)."""
    return {key: value for key, value in os.environ.items() if key not in NOT_PASSED_ON}


def timed(command: Sequence, *, expect_exit: int | tuple[int, ...] = 0, contains: Sequence[str] = (),
          check: Callable[[Measured], str | None] | None = None, env: dict | None = None) -> Measured:
    """Run `command` to its end, timing it and sampling the resident memory of its process tree.
    Raises BenchFailure unless its exit code is `expect_exit`, its stdout has every string of
    `contains`, and `check` (given the result) returns None rather than a reason. env: variables added
    to its environment."""
    import psutil

    command = tuple(str(part) for part in command)
    settle()
    # Files, not pipes: a full pipe would stall the command and the stall would be timed.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=command_env() | (env or {}))
        peak = 0
        try:
            watched = psutil.Process(process.pid)
            while process.poll() is None:
                peak = max(peak, _tree_memory(watched, psutil))
                time.sleep(SAMPLE_EVERY_S)
        except psutil.NoSuchProcess:
            pass  # ended between poll() and the sample
        process.wait()
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        measured = Measured(command, elapsed, out.read(), err.read(), process.returncode, peak)
    expected = (expect_exit,) if isinstance(expect_exit, int) else expect_exit
    if measured.exit_code not in expected:
        raise BenchFailure(f"exit code {measured.exit_code}, expected {' or '.join(map(str, expected))}", measured)
    missing = [text for text in contains if text not in measured.stdout]
    if missing:
        raise BenchFailure(f"its output lacks {missing}", measured)
    reason = check(measured) if check else None
    if reason:
        raise BenchFailure(reason, measured)
    return measured


def _tree_memory(process, psutil) -> int:
    """The process's memory plus its children's (pg_dump, squawk, ...), read together: each one's
    proportional set size (PSS) where the system gives it, else its resident set. Not RSS summed: a
    child between fork and exec shares every page of its parent, and RSS would count a 600 MB parent
    twice for a squawk started from it (PSS splits a shared page between the processes sharing it)."""
    total = 0
    for member in (process, *process.children(recursive=True)):
        try:
            try:
                info = member.memory_full_info()
                total += getattr(info, "pss", info.rss)
            except psutil.AccessDenied:  # another user's process: its resident set
                total += member.memory_info().rss
        except psutil.Error:
            pass  # a child that ended between the listing and the read
    return total


def median_seconds(runs: Sequence[Measured]) -> float:
    return statistics.median(run.seconds for run in runs)


def peak_mb(runs: Sequence[Measured]) -> float:
    return max(run.peak_mb for run in runs)


def sql(url, statement, params=None):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def fresh_db(admin, name, template="template0"):
    from reconcile_engine.connections import with_database

    sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sql(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return with_database(admin, name)


def reconcile(command, project, target=None, *extra, as_of=True):
    """A reconcile command line; without a target, the project's own (its embedded server)."""
    line = [sys.executable, str(REPO / "reconcile.py"), *command.split(), "--project", str(project)]
    if target is not None:
        line += ["--database-url", target]
    if as_of and command in ("plan", "drift"):
        line += ["--as-of", AS_OF]
    return [*line, *extra]
