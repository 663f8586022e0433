"""Beside servers.py: the embedded PostgreSQL kept running between commands, and stopped when idle.

A command that uses an embedded server (the default target, or a scratch server of the project's own)
holds a shared lock on <data folder>.lock (fcntl.flock, beside the data folder) for as long as it uses
it, and starts the server, under the exclusive lock, only when it is not running already. Stopping
takes the exclusive lock, so neither `reconcile server stop` nor the idle watcher ever stops a server
under a running command. Each command writes the idle setting into <data folder>.used at its start and
end (the file's time is the last use); one detached watcher per data folder (holding
<data folder>.watcher) stops the server once that file has not been touched for that long, and exits
when the server is gone (embedded_watcher.py). An idle time of 0 stops the server at the end of the last
command using it.

No PostgreSQL connection is opened here: a server is taken as running when its postmaster.pid says
ready, its process is alive and its socket accepts (a stale postmaster.pid, after a kill -9, has none).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from .errors import ConfigError, DatabaseError, ServerInUseError

IDLE_ENV = "RECONCILE_EMBEDDED_IDLE_SECONDS"  # overrides embedded.idle_minutes (CI and tests set 0)
DEFAULT_IDLE_S = 15 * 60
LOCK_WAIT_S = 120.0  # how long a command waits for another one starting or stopping the server
STOP_WAIT_S = 60.0  # fast shutdown: sessions are ended and a checkpoint written


def idle_seconds(configured_minutes: float | None = None) -> float:
    """How long a server stays up without a command: $RECONCILE_EMBEDDED_IDLE_SECONDS, else the
    configured minutes (embedded.idle_minutes), else 15 minutes."""
    text = os.environ.get(IDLE_ENV)
    if text is None or not text.strip():
        return DEFAULT_IDLE_S if configured_minutes is None else configured_minutes * 60
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"${IDLE_ENV}: expected a number of seconds (0: stop at the end of each command), "
                          f"got {text[:40]!r}")
    return value


def beside(data_dir: Path, suffix: str) -> Path:
    """A file beside the data folder: <data folder><suffix> (the lock, the last use, the watcher's)."""
    return data_dir.with_name(data_dir.name + suffix)


@dataclasses.dataclass(frozen=True)
class Postmaster:
    """What a server's postmaster.pid says of it."""

    pid: int
    port: int
    socket_dir: Path | None
    host: str | None
    ready: bool

    def url(self, database: str) -> str:
        if self.socket_dir is not None:
            return f"postgresql://postgres:@/{database}?host={quote(str(self.socket_dir), safe='/')}&port={self.port}"
        return f"postgresql://postgres:@{self.host or '127.0.0.1'}:{self.port}/{database}"

    def alive(self) -> bool:
        """Its process exists and its socket accepts: not a postmaster.pid left by a killed server."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process (the server runs as its own user under root)
            pass
        family, address = (socket.AF_UNIX, str(self.socket_dir / f".s.PGSQL.{self.port}")) \
            if self.socket_dir is not None else (socket.AF_INET, (self.host or "127.0.0.1", self.port))
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            try:
                probe.connect(address)  # closed before any startup packet: the server logs nothing
            except OSError:
                return False
        return True


def read_postmaster(data_dir: Path) -> Postmaster | None:
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(lines) < 8 or not lines[0].strip().isdigit():  # being written, or not PostgreSQL's
        return None
    port = lines[3].strip()
    return Postmaster(int(lines[0]), int(port) if port.isdigit() else 5432,
                      Path(lines[4].strip()) if lines[4].strip() else None, lines[5].strip() or None,
                      lines[7].strip() == "ready")


def running(data_dir: Path) -> Postmaster | None:
    """The server of `data_dir` when it runs and accepts connections, else None."""
    postmaster = read_postmaster(data_dir)
    return postmaster if postmaster is not None and postmaster.ready and postmaster.alive() else None


class FileLock:
    """An flock on a file, waited for in short steps up to a bound."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the server nor the watcher

    def take(self, mode: int, wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def _record_use(data_dir: Path, idle_s: float) -> None:
    """Touch <data>.used with the idle setting (written whole: the watcher may read it at any time)."""
    used = beside(data_dir, ".used")
    partial = beside(data_dir, f".used.{os.getpid()}")
    partial.write_text(json.dumps({"idle_seconds": idle_s}))
    os.replace(partial, used)


def last_use(data_dir: Path) -> tuple[float, float] | None:
    """(idle seconds, time of the last use) from <data>.used, or None when no command recorded one."""
    used = beside(data_dir, ".used")
    try:
        return float(json.loads(used.read_text())["idle_seconds"]), used.stat().st_mtime
    except (OSError, ValueError, KeyError, TypeError):
        return None


def users(data_dir: Path) -> tuple[str, ...]:
    """The commands using the server now: 'pid N: reconcile drift ...' (their processes alive)."""
    found = []
    folder = beside(data_dir, ".users")
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        pid = entry.name.partition(".")[0]
        try:
            os.kill(int(pid), 0)
            found.append(f"pid {pid}: {entry.read_text().strip()}")
        except (ValueError, ProcessLookupError, OSError):
            continue  # a command killed before its end left it
    return tuple(dict.fromkeys(found))


class ServerUse:
    """This process's use of a running server: the shared lock, held until release()."""

    def __init__(self, data_dir: Path, idle_s: float, lock: FileLock, postmaster: Postmaster, command: str):
        self.data_dir, self.idle_s, self.lock, self.postmaster = data_dir, idle_s, lock, postmaster
        self.user_file = beside(data_dir, ".users") / f"{os.getpid()}.{id(self)}"  # a process may use it twice
        self.user_file.parent.mkdir(exist_ok=True)
        self.user_file.write_text(command)
        _record_use(data_dir, idle_s)

    @property
    def released(self) -> bool:
        return self.lock.fd is None

    def release(self, stop: bool = False) -> None:
        """The command is done with the server: the idle time starts now. With an idle time of 0, or
        stop=True, the server is stopped, unless another command uses it (then it is left to that one)."""
        if self.released:
            if stop:
                stop_if_unused(self.data_dir)
            return
        try:
            _record_use(self.data_dir, self.idle_s)
            self.user_file.unlink(missing_ok=True)
            if (stop or self.idle_s == 0) and self.lock.take(fcntl.LOCK_EX, 0):
                stop_server(self.data_dir)
        finally:
            self.lock.close()


def use_server(data_dir: Path, idle_s: float, start: Callable[[], None], command: str) -> ServerUse:
    """The server of `data_dir`, started by `start()` unless it runs; held (shared) until release().
    `command`: what uses it, shown by `reconcile server status` and by a stop that has to wait."""
    lock = FileLock(beside(data_dir, ".lock"))
    try:
        _take(lock, fcntl.LOCK_SH, data_dir)
        postmaster = running(data_dir)
        if postmaster is None:
            _take(lock, fcntl.LOCK_EX, data_dir)  # no command uses it: none stops it while it starts
            if running(data_dir) is None:
                start()
            _take(lock, fcntl.LOCK_SH, data_dir)  # not atomic: checked again once shared
            postmaster = running(data_dir)
        if postmaster is None:
            raise DatabaseError(f"the embedded PostgreSQL server in {data_dir} was started but does not accept "
                                f"connections; see {data_dir / 'log'}")
        use = ServerUse(data_dir, idle_s, lock, postmaster, command)
    except BaseException:
        lock.close()
        raise
    return use


def _take(lock: FileLock, mode: int, data_dir: Path) -> None:
    if not lock.take(mode, LOCK_WAIT_S):
        raise DatabaseError(f"the embedded PostgreSQL server in {data_dir} has been starting or stopping for over "
                            f"{LOCK_WAIT_S:.0f} s in another command; see {data_dir / 'log'}")


def stop_server(data_dir: Path) -> bool:
    """Stop the server of `data_dir` (fast shutdown: sessions ended, a checkpoint written); the caller
    holds the exclusive lock. False when none was running."""
    postmaster = running(data_dir)
    if postmaster is None:
        return False
    for sig, wait_s in ((signal.SIGINT, STOP_WAIT_S), (signal.SIGQUIT, 10.0)):
        try:
            os.kill(postmaster.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            # postmaster.pid is removed at the end of a shutdown (its status line says "stopping" before);
            # a stopped process may stay a zombie a moment.
            now = read_postmaster(data_dir)
            if now is None or now.pid != postmaster.pid or not process_exists(postmaster.pid):
                return True
            time.sleep(0.05)
    raise DatabaseError(f"the embedded PostgreSQL server in {data_dir} (pid {postmaster.pid}) did not stop; "
                        f"see {data_dir / 'log'}")


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def stop_if_unused(data_dir: Path) -> bool:
    """Stop the server now unless a command uses it; False when it was not stopped."""
    lock = FileLock(beside(data_dir, ".lock"))
    try:
        return lock.take(fcntl.LOCK_EX, 0) and stop_server(data_dir)
    finally:
        lock.close()


def stop_when_unused(data_dir: Path, wait_s: float) -> bool:
    """Stop the server once no command uses it, waiting up to wait_s; False when none was running.
    Raises ServerInUseError naming the commands using it after that."""
    lock = FileLock(beside(data_dir, ".lock"))
    try:
        if not lock.take(fcntl.LOCK_EX, wait_s):
            raise ServerInUseError(data_dir, users(data_dir), wait_s)
        return stop_server(data_dir)
    finally:
        lock.close()
