"""Connecting to PostgreSQL safely: one helper for every connection the scratch, runner and deploy
stages open, password-free names for databases, and URLs rewritten for libpq programs and SQLAlchemy.
Importing this module changes nothing in the process: statements become interruptible by Ctrl-C
only when the command line asks for it (cancel_statements_on_interrupt)."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import select

import psycopg2
import psycopg2.extensions

from .errors import DatabaseError


CANCEL_AGAIN_AFTER_S = 1.0


def _wait_interruptibly(conn) -> None:
    """Wait for libpq in Python, so Ctrl-C (and SIGTERM, see scratch.py) reaches us mid-statement.

    Like psycopg2.extras.wait_select, the statement is cancelled on the server; unlike it, the
    interrupt is raised again afterwards, so the command stops instead of reporting a failed statement.
    """
    interrupted: KeyboardInterrupt | None = None  # raised again once the statement stopped (SIGTERM's kind too)
    while True:
        try:
            state = conn.poll()
            if state == psycopg2.extensions.POLL_OK:
                break
            # Once interrupted, the cancel is sent again each second: one that reaches the server
            # before the statement does (the interrupt came while it was being sent) cancels nothing.
            timeout = CANCEL_AGAIN_AFTER_S if interrupted else None
            if state == psycopg2.extensions.POLL_READ:
                ready = select.select([conn.fileno()], [], [], timeout)
            else:
                ready = select.select([], [conn.fileno()], [], timeout)
            if interrupted and not any(ready):
                _cancel(conn, interrupted)
        except KeyboardInterrupt as exc:
            interrupted = exc
            _cancel(conn, exc)
        except psycopg2.extensions.QueryCanceledError:
            if interrupted:
                raise interrupted from None
            raise
    if interrupted:
        raise interrupted


def _cancel(conn, interrupt: KeyboardInterrupt) -> None:
    try:
        conn.cancel()
    except psycopg2.Error:  # still connecting: no statement runs yet, so nothing to cancel
        raise interrupt from None


def cancel_statements_on_interrupt() -> None:
    """Make Ctrl-C (and SIGTERM, see scratch/databases.py) cancel the running statement on the server.
    psycopg2's wait callback is process-wide: the command line installs it; a library caller may."""
    psycopg2.extensions.set_wait_callback(_wait_interruptibly)


# Up to the last '@' before the path: a password holding an unencoded '@' is hidden whole.
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]*:)([^/\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Remove any password from text that may carry a connection URL or DSN."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    return _KV_PASSWORD.sub(r"\1***", text)


def describe(url: str) -> str:
    """A short, password-free name for a database: user@host:port/db."""
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number (see check_url): left out, as it may be part of a password
        port = ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{user}{host}{port}{parts.path or '/'}"


def check_url(url: str) -> None:
    """Refuse a database URL that libpq would read otherwise than it is meant, before it is used: its
    error would name a part of the password as the host ('could not translate host name') or as the
    port. libpq ends the user and password at the first '@' or '/', so either one left unencoded in a
    password moves the rest of it into the host, the port or the database name. The messages name the
    database only by describe(), and only where no part of a password can be in it."""
    if "://" not in url:
        return  # a key=value connection string: libpq's own errors name no password
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    encode = "a password p@ss/word is written p%40ss%2Fword"
    if "@" in credentials:
        raise DatabaseError(f"cannot connect to {describe(url)}: the database URL holds more than one '@' before "
                            f"its host; percent-encode '@' as %40 in a password or user name ({encode})")
    if "@" in parts.path:
        raise DatabaseError(f"cannot connect: the database URL holds an '@' after a '/'; percent-encode '/' as "
                            f"%2F and '@' as %40 in a password ({encode}) or in a database name")
    # Several hosts are allowed (host1:5432,host2:5432); '[...]' holds an IPv6 address's colons.
    ports = [host.rpartition("]")[2].partition(":")[2] for host in hosts.split(",")]
    if any(port and not (port.isascii() and port.isdigit()) for port in ports):
        raise DatabaseError(f"cannot connect to {describe(url)}: the port in the database URL must be a number, "
                            f"as in postgresql://user@host:5432/db")


def server_major(conn) -> int:
    return conn.server_version // 10000


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact(text.splitlines()[0].strip())


def connect(url: str, connect_timeout_s: int = 10, autocommit: bool = True,
            settings: str | None = None) -> psycopg2.extensions.connection:
    """settings: libpq options for the session, e.g. '-c synchronous_commit=off'."""
    extra = {"options": settings} if settings else {}
    check_url(url)
    try:
        conn = psycopg2.connect(url, connect_timeout=connect_timeout_s, application_name="reconcile", **extra)
    except psycopg2.Error as exc:
        raise DatabaseError(f"cannot connect to {describe(url)}: {first_line(exc)}") from exc
    conn.autocommit = autocommit
    return conn


# A session that changes the target: its server checks every second, while a statement runs, that the
# client is still there (PostgreSQL 14+), and ends a transaction left idle for a minute, so that a killed
# apply's statement, its table locks and the apply lock end with it rather than when the statement would.
CLIENT_CHECK_INTERVAL = "1s"
IDLE_IN_TRANSACTION_TIMEOUT = "60s"
CLIENT_CHECK_SINCE = 14


def connect_to_change(url: str, connect_timeout_s: int = 10) -> psycopg2.extensions.connection:
    """An autocommit session for apply, rollback and maintain (see CLIENT_CHECK_INTERVAL)."""
    conn = connect(url, connect_timeout_s, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET idle_in_transaction_session_timeout = %s", (IDLE_IN_TRANSACTION_TIMEOUT,))
            if server_major(conn) >= CLIENT_CHECK_SINCE:
                cur.execute("SET client_connection_check_interval = %s", (CLIENT_CHECK_INTERVAL,))
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def connected(url: str, connect_timeout_s: int = 10, autocommit: bool = True):
    """A connection closed on leaving the block, whatever happens in it."""
    conn = connect(url, connect_timeout_s, autocommit)
    try:
        yield conn
    finally:
        conn.close()


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return parts._replace(path="/" + database).geturl()


def libpq_environment(url: str) -> tuple[str, dict[str, str]]:
    """`url` without its password, and the environment that gives the password to a libpq program
    (pg_dump): its arguments are in every process listing, its environment is not."""
    check_url(url)
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

    check_url(url)
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


def connection_lost(conn) -> bool:
    """The session is gone (server restart, pg_terminate_backend, network): psycopg2 marks the
    connection closed when an operation found it broken."""
    return bool(conn.closed)


def roll_back_if_alive(conn) -> None:
    """Roll back an open transaction after an error, unless the session is gone (then the server
    rolled it back itself, and touching the connection would only raise 'connection already closed')."""
    if connection_lost(conn):
        return
    try:
        if not conn.autocommit:
            conn.rollback()
    except psycopg2.Error:
        pass  # it broke on the way: the server rolls back what the session left
