"""Stage 2: scratch databases. The desired state is built in one; rehearsals run in another.

A scratch database is always dropped: on success, on error and on Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import subprocess
import threading

import psycopg2
from pglast import parser as pg_parser

from .config import Config
from .declared import DesiredState, SqlSource
from .errors import DatabaseError, DeclaredStateError, ScratchError
from .servers import (
    EmbeddedServer, Target, connect, describe, execute_batched, first_line, pg_dump_path, redact, with_database,
)
from .sqltext import quote_ident

SCRATCH_PREFIX = "reconcile_scratch_"


@dataclasses.dataclass
class ScratchServer:
    """Where scratch databases are made, and whether it is the target's own server."""

    admin_url: str  # any database on that server we may connect to, to CREATE/DROP DATABASE
    same_server_as_target: bool
    embedded: EmbeddedServer | None = None


def choose_scratch_server(config: Config, target: Target) -> ScratchServer:
    mode = config.scratch_mode
    if target.embedded is not None and mode in ("auto", "target-server", "embedded"):
        return ScratchServer(target.embedded.url("postgres"), True, target.embedded)
    if mode in ("auto", "target-server"):
        return ScratchServer(target.url, True)
    if mode == "server":
        return ScratchServer(config.scratch_server_url, False)
    from .servers import embedded_data_dir

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
        self.url = with_database(server.admin_url, self.name)
        self._signals = _TerminateAsInterrupt()
        self._dropping: threading.Thread | None = None
        self._drop_error: Exception | None = None

    def _admin(self):
        return connect(self.server.admin_url, self.connect_timeout_s)

    def __enter__(self) -> "ScratchDatabase":
        self._signals.__enter__()
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {quote_ident(self.name)} TEMPLATE template0")
        except psycopg2.Error as exc:
            self._signals.__exit__(None, None, None)
            raise ScratchError(
                f"cannot create a scratch database on {describe(self.server.admin_url)}: {first_line(exc)} "
                f"(the role needs CREATEDB, or set scratch.mode in reconcile.yaml)"
            ) from exc
        finally:
            conn.close()
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
        """Roles and extensions the declared state needs, before anything is loaded."""
        conn = self.connect()
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
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for source in desired.sources:
                    _load_source(cur, source)
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
        command = [str(pg_dump_path()), "--schema-only", "--no-owner", "--no-privileges", "--dbname", source_url]
        for schema in schemas:
            command += ["--schema", schema]
        try:
            dumped = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
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


def _line_at(text: str, index: int) -> int:
    return text.count("\n", 0, max(0, index)) + 1


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


def _load_source(cur, source: SqlSource) -> None:
    if source.spec is not None:
        _check_partition_spec(cur, source.spec)
    label = f"{source.display}{' (rendered)' if source.rendered else ''}"
    try:
        slices = pg_parser.split(source.sql, with_parser=True, only_slices=True)
    except pg_parser.ParseError as exc:
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        raise DeclaredStateError(f"{label}:{_line_at(source.sql, index)}: {exc.args[0]}") from exc

    def run_one(index: int) -> None:
        piece = slices[index]
        try:
            cur.execute(source.sql[piece])
        except psycopg2.Error as exc:
            position = getattr(exc.diag, "statement_position", None)
            offset = piece.start + (int(position) - 1 if position else 0)
            message = (exc.diag.message_primary or first_line(exc)).strip()
            raise DeclaredStateError(f"{label}:{_line_at(source.sql, offset)}: {message}") from exc

    execute_batched(cur, [source.sql[piece] for piece in slices], run_one, savepoints=False)

