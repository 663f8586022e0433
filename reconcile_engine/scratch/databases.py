"""Stage 2: scratch databases. The desired state is built in one; rehearsals run in another.

A scratch database is always dropped: on success, on error and on Ctrl-C. What runs in it runs as
the run's temporary build role (buildrole.py), inert (inert.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import threading

import psycopg2

from ..config import Config
from ..connections import connect, describe, first_line, libpq_environment, redact, with_database
from ..declared.admission import line_at
from ..declared.files import DesiredState, SqlSource
from ..errors import DatabaseError, DeclaredStateError, ScratchError
from ..runner import execute_batched
from ..servers import EmbeddedServer, Target, pg_dump_path
from ..sqltext import quote_ident
from .build_role import BuildRole, check_login, create_build_role, drop_build_role, may_create_roles
from .inert import InertFunctions

SCRATCH_PREFIX = "reconcile_scratch_"


@dataclasses.dataclass
class ScratchServer:
    """Where scratch databases are made, and whether it is the target's own server."""

    admin_url: str  # any database on that server we may connect to, to CREATE/DROP DATABASE
    same_server_as_target: bool
    embedded: EmbeddedServer | None = None
    builder: BuildRole | None = None  # owns the scratch databases and runs what is in them (scratch_space)
    admin_is_superuser: bool = False
    login_checked: bool = dataclasses.field(default=False, repr=False)


@contextlib.contextmanager
def scratch_space(config: Config, target: Target):
    """The scratch server for this target (choose_scratch_server), with the run's build role on it."""
    with build_role_on(choose_scratch_server(config, target), config.timeouts.connect_timeout_s) as server:
        yield server


@contextlib.contextmanager
def build_role_on(server: ScratchServer, connect_timeout_s: int):
    """`server` with a temporary build role made on it (buildrole.py), dropped at the end.

    On the target's server a role that cannot create roles is refused: the declared state would run
    as the deploy role itself. Elsewhere (scratch.mode server or embedded: servers that hold nothing
    else) such a role builds as itself."""
    with _TerminateAsInterrupt():
        superuser, creates_roles = may_create_roles(server.admin_url, connect_timeout_s)
        if not creates_roles and server.same_server_as_target:
            raise ScratchError(
                f"the role of {describe(server.admin_url)} cannot create roles, so the declared files would be "
                f"built on the target's server with the deploy role's own rights: give it CREATEROLE (the "
                f"temporary role it makes has none of its rights), or set scratch.mode to server or embedded "
                f"in reconcile.yaml to build them elsewhere"
            )
        if creates_roles:
            server = dataclasses.replace(server, admin_is_superuser=superuser,
                                         builder=create_build_role(server.admin_url, superuser, connect_timeout_s))
        try:
            yield server
        finally:
            if server.builder is not None:
                drop_build_role(server.admin_url, server.builder, connect_timeout_s)


def choose_scratch_server(config: Config, target: Target) -> ScratchServer:
    mode = config.scratch_mode
    if target.embedded is not None and mode in ("auto", "target-server", "embedded"):
        return ScratchServer(target.embedded.url("postgres"), True, target.embedded)
    if mode in ("auto", "target-server"):
        return ScratchServer(target.url, True)
    if mode == "server":
        return ScratchServer(config.scratch_server_url, False)
    from ..servers import embedded_data_dir

    scratch_dir = embedded_data_dir(config).parent / "scratch-pgdata"
    server = EmbeddedServer.start(scratch_dir)
    return ScratchServer(server.url("postgres"), False, server)


class _TerminateAsInterrupt:
    """Turn SIGTERM into KeyboardInterrupt while a scratch database exists, so it is still dropped."""

    def __enter__(self):
        self.previous = None
        try:
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not in the main thread
            pass
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


class ScratchDatabase:
    """A uniquely named, temporary database: `with ScratchDatabase(server, 'desired') as db: db.url`."""

    def __init__(self, server: ScratchServer, purpose: str, connect_timeout_s: int = 10):
        self.server = server
        self.name = f"{SCRATCH_PREFIX}{purpose}_{os.getpid()}_{secrets.token_hex(4)}"
        self.connect_timeout_s = connect_timeout_s
        # What the scratch database holds runs as the build role; the admin only creates and drops it.
        self.url = server.builder.url(server.admin_url, self.name) if server.builder else \
            with_database(server.admin_url, self.name)
        self.inert = InertFunctions()  # functions stubbed in it, until their bodies are put back
        self._signals = _TerminateAsInterrupt()
        self._dropping: threading.Thread | None = None
        self._drop_error: Exception | None = None

    def _admin(self):
        return connect(self.server.admin_url, self.connect_timeout_s)

    def __enter__(self) -> "ScratchDatabase":
        self._signals.__enter__()
        builder = self.server.builder
        owner = f" OWNER {quote_ident(builder.name)}" if builder else ""
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {quote_ident(self.name)}{owner} TEMPLATE template0")
        except psycopg2.Error as exc:
            self._signals.__exit__(None, None, None)
            raise ScratchError(
                f"cannot create a scratch database on {describe(self.server.admin_url)}: {first_line(exc)} "
                f"(the role needs CREATEDB, or set scratch.mode in reconcile.yaml)"
            ) from exc
        finally:
            conn.close()
        if builder is not None and not self.server.login_checked:
            try:
                check_login(builder, self.server.admin_url, self.name, self.connect_timeout_s)
            except BaseException:
                self.__exit__(None, None, None)
                raise
            self.server.login_checked = True
        return self

    def __exit__(self, *exc_info) -> bool:
        try:
            if self._dropping is None:
                self._drop()
            else:
                self._dropping.join()
                if self._drop_error is not None and exc_info[0] is None:
                    raise self._drop_error
        finally:
            self._signals.__exit__(*exc_info)
        return False

    def _drop(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(self.name)} WITH (FORCE)")
        finally:
            conn.close()

    def drop_in_background(self) -> None:
        """Start dropping it now, while other work goes on (it is no longer needed); leaving the
        `with` block waits for the drop to finish."""

        def drop() -> None:
            try:
                self._drop()
            except Exception as exc:  # reported by __exit__, in the main thread
                self._drop_error = exc

        self._dropping = threading.Thread(target=drop, name=f"drop {self.name}", daemon=True)
        self._dropping.start()

    def connect(self, autocommit: bool = True):
        # A scratch database is thrown away after use: its commits need not wait for the disk.
        return connect(self.url, self.connect_timeout_s, autocommit=autocommit,
                       settings="-c synchronous_commit=off")

    # -- preparing the scratch database -------------------------------------------------------

    def prepare(self, config: Config) -> None:
        """Roles and extensions the declared state needs, before anything is loaded. Roles are the
        server's, so the admin makes them; a superuser admin makes the extensions too (some need a
        superuser), else the build role does, which can make the trusted ones."""
        conn = connect(self.server.admin_url, self.connect_timeout_s)
        try:
            with conn.cursor() as cur:
                for role in config.roles:
                    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                    if cur.fetchone() is not None:
                        continue
                    if self.server.same_server_as_target:
                        # Roles are global to a server: creating one here would change the target's server.
                        raise ScratchError(
                            f"role {role!r} (listed under roles: in reconcile.yaml) does not exist on the "
                            f"target's server; create it there first"
                        )
                    cur.execute(f"CREATE ROLE {quote_ident(role)} NOLOGIN")
        finally:
            conn.close()
        if not config.extensions:
            return
        by_admin = self.server.builder is None or self.server.admin_is_superuser
        conn = connect(with_database(self.server.admin_url, self.name), self.connect_timeout_s) if by_admin \
            else self.connect()
        try:
            with conn.cursor() as cur:
                for extension in config.extensions:
                    try:
                        cur.execute(f"CREATE EXTENSION IF NOT EXISTS {quote_ident(extension)}")
                    except psycopg2.Error as exc:
                        raise ScratchError(
                            f"extension {extension!r} (listed under extensions: in reconcile.yaml) cannot be "
                            f"created in the scratch database: {first_line(exc)}"
                        ) from exc
        finally:
            conn.close()

    def load_desired(self, desired: DesiredState) -> None:
        """Run the admitted declared statements, inert; then put the functions' bodies back."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for source in desired.sources:
                    _load_source(cur, source, self.inert)
            self.inert.restore(conn)
        finally:
            conn.close()

    def create_schemas(self, schemas: tuple[str, ...], comments: dict) -> None:
        """Empty schemas, with their comments (the copy of a target that has nothing else)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for schema in schemas:
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                    comment = comments.get(f"SCHEMA {quote_ident(schema)}")
                    cur.execute(f"COMMENT ON SCHEMA {quote_ident(schema)} IS %s", (comment,))
        finally:
            conn.close()

    def load_schema_of(self, source_url: str, schemas: tuple[str, ...]) -> None:
        """Copy the schema (no data) of the managed schemas of another database into this one."""
        # The password goes through pg_dump's environment, never its arguments (the process list shows those).
        url, environment = libpq_environment(source_url)
        command = [str(pg_dump_path()), "--schema-only", "--no-owner", "--no-privileges", "--dbname", url]
        for schema in schemas:
            command += ["--schema", schema]
        try:
            dumped = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600,
                                    env=os.environ | environment)
        except subprocess.CalledProcessError as exc:
            message = redact((exc.stderr or "").strip().splitlines()[-1] if exc.stderr.strip() else str(exc))
            raise DatabaseError(f"cannot copy the target's schema with pg_dump: {message}") from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DatabaseError(f"cannot run pg_dump: {first_line(exc)}") from exc
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT name FROM pg_settings")
                known = {row[0] for row in cur.fetchall()}
                cur.execute(_restorable(dumped.stdout, known))
        except psycopg2.Error as exc:
            raise ScratchError(f"cannot rebuild the target's schema in a scratch database: {first_line(exc)}") from exc
        finally:
            conn.close()


def _restorable(dump: str, known_settings: set[str]) -> str:
    """pg_dump's text for psycopg2: no psql meta-commands, no settings this server lacks
    (pg_dump 18 sets transaction_timeout, unknown to 15), and schemas that may already exist."""
    lines = []
    for line in dump.splitlines():
        if line.startswith("\\"):  # \restrict and \unrestrict (pg_dump 17.6+) are psql commands
            continue
        if line.startswith("SET ") and line.split()[1] not in known_settings:
            continue
        if line.startswith("CREATE SCHEMA ") and "IF NOT EXISTS" not in line:
            line = line.replace("CREATE SCHEMA ", "CREATE SCHEMA IF NOT EXISTS ", 1)
        lines.append(line)
    return "\n".join(lines)


def _check_partition_spec(cur, spec) -> None:
    """A spec must name a range-partitioned table declared in schema/, by its single key column."""
    cur.execute(
        """SELECT pt.partstrat::text, pg_get_partkeydef(c.oid),
                  (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(pt.partattrs) WITH ORDINALITY k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
           WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')""",
        (spec.schema, spec.table),
    )
    row = cur.fetchone()
    where = f"{spec.display}: "
    if row is None:
        raise DeclaredStateError(f"{where}table: {spec.schema}.{spec.table} is not declared in schema/")
    strategy, keydef, columns = row
    if strategy is None:
        raise DeclaredStateError(f"{where}table: {spec.schema}.{spec.table} is not partitioned "
                                 f"(declare it with PARTITION BY RANGE ({spec.column}))")
    if strategy != "r" or columns != [spec.column]:
        raise DeclaredStateError(f"{where}column: {spec.column} is not the range partition key of "
                                 f"{spec.schema}.{spec.table}, which is partitioned by {keydef}")


def _load_source(cur, source: SqlSource, inert: InertFunctions) -> None:
    """Run a declared file's admitted statements, each in its inert form (inert.py); an error names
    the file and the line of the statement, or of the position PostgreSQL points at in it."""
    if source.spec is not None:
        _check_partition_spec(cur, source.spec)
    runs = []  # (statement, text, whether positions in the text are those of the statement)
    for statement in source.statements:
        for number, text in enumerate(inert.texts(statement.text, statement.node_type)):
            runs.append((statement, text, number == 0))

    def run_one(index: int) -> None:
        statement, text, as_written = runs[index]
        try:
            cur.execute(text)
        except psycopg2.Error as exc:
            position = getattr(exc.diag, "statement_position", None) if as_written else None
            offset = statement.start + (int(position) - 1 if position else 0)
            message = (exc.diag.message_primary or first_line(exc)).strip()
            raise DeclaredStateError(f"{source.label}:{line_at(source.sql, offset)}: {message}") from exc

    execute_batched(cur, [text for _, text, _ in runs], run_one, savepoints=False)

