"""Beside embedded_keeper.py: the idle watcher, one small detached process per embedded data folder,
which stops the server when no command has used it for its idle time, and exits once it is gone.

A command starts one (ensure_watcher) when none holds <data folder>.watcher; it runs without a terminal,
in a session of its own, its output in <data folder>-watcher.log."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .embedded_keeper import DEFAULT_IDLE_S, FileLock, beside, last_use, process_exists, read_postmaster, stop_server

WATCHER_MAIN = ("import pathlib, sys; from reconcile_engine.embedded_watcher import watch; "
                "watch(pathlib.Path(sys.argv[1]))")
LONGEST_SLEEP_S = 10.0  # a server stopped by anyone else is noticed within this


def watcher_log(data_dir: Path) -> Path:
    return beside(data_dir, "-watcher.log")


def ensure_watcher(data_dir: Path) -> None:
    """Start the watcher of `data_dir` unless one runs."""
    probe = FileLock(beside(data_dir, ".watcher"))
    try:
        if not probe.take(fcntl.LOCK_EX, 0):
            return  # one watches already
    finally:
        probe.close()
    # The engine as this process imports it, whether installed or run from a checkout (python reconcile.py).
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (package_parent, os.environ.get("PYTHONPATH")))))
    with open(watcher_log(data_dir), "a") as log:
        # Two commands may both get here: the second watcher finds the lock taken and exits.
        subprocess.Popen([sys.executable, "-c", WATCHER_MAIN, str(data_dir)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/", env=env, start_new_session=True)


def watch(data_dir: Path, now: Callable[[], float] = time.time) -> None:
    """Stop the server of `data_dir` when no command has used it for its idle time; return once it is
    gone (stopped here, or by anyone else), or at once when another watcher holds the folder."""
    lock = FileLock(beside(data_dir, ".watcher"))
    if not lock.take(fcntl.LOCK_EX, 0):
        return
    while (postmaster := read_postmaster(data_dir)) is not None and process_exists(postmaster.pid):
        idle_s, last = last_use(data_dir) or (DEFAULT_IDLE_S, now())
        remaining = last + idle_s - now()
        if remaining > 0:
            time.sleep(min(remaining, LONGEST_SLEEP_S))
            continue
        server_lock = FileLock(beside(data_dir, ".lock"))
        try:
            # Taken only when no command uses the server; the last use is read again under it.
            if server_lock.take(fcntl.LOCK_EX, 0) and (last_use(data_dir) or (idle_s, last))[1] + idle_s <= now():
                if stop_server(data_dir):
                    _log(f"stopped the server in {data_dir} after {idle_s:.0f} s without a command")
                return
        finally:
            server_lock.close()
        time.sleep(1.0)
    _log(f"the server in {data_dir} is gone: the watcher ends")


def _log(text: str) -> None:
    print(f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} {text}", flush=True)
