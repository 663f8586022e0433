"""Stage 2: scratch databases. The desired state is built in one; rehearsals run in another.

A scratch database is always dropped: on success, on error and on Ctrl-C; one a run killed with
SIGKILL leaves, the next run drops (leftovers.py: each names its run in its COMMENT). What runs in it
runs as the run's temporary build role (buildrole.py), inert (inert.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import threading

import psycopg2
import psycopg2.errors

from ..config import Config
from ..connections import connect, connected, describe, first_line, with_database
from ..declared.admission import line_at
from ..declared.files import DesiredState, SqlSource
from ..declared.inference import infer
from ..errors import DeclaredStateError, ScratchError, StopRequested
from ..runner import execute_batched
from ..servers import EmbeddedServer, Target
from ..sqltext import quote_ident, quote_literal
from .build_role import BuildRole, check_login, create_build_role, drop_build_role, may_create_roles
from .inert import InertFunctions
from .leftovers import SCRATCH_PREFIX, identity_comment, sweep
from .schema_dump import dump_schemas, run_dump
from .target_environment import TargetEnvironment, read_target_environment


@dataclasses.dataclass
class ScratchServer:
    """Where scratch databases are made, and whether it is the target's own server."""

    admin_url: str  # any database on that server we may connect to, to CREATE/DROP DATABASE
    same_server_as_target: bool
    embedded: EmbeddedServer | None = None
    builder: BuildRole | None = None  # owns the scratch databases and runs what is in them (scratch_space)
    admin_is_superuser: bool = False
    login_checked: bool = dataclasses.field(default=False, repr=False)
    # What every scratch database gets from the target (external schemas, default privileges, grants).
    environment: TargetEnvironment = TargetEnvironment()


@contextlib.contextmanager
def scratch_space(config: Config, target: Target):
    """The scratch server for this target (choose_scratch_server), with the run's build role on it and
    what its scratch databases need from the target."""
    environment = read_target_environment(config, target.url)
    server = dataclasses.replace(choose_scratch_server(config, target), environment=environment)
    with build_role_on(server, config.timeouts.connect_timeout_s) as server:
        yield server


@contextlib.contextmanager
def build_role_on(server: ScratchServer, connect_timeout_s: int):
    """`server` with a temporary build role made on it (buildrole.py), dropped at the end; first, what
    runs that are gone left on it is dropped (leftovers.py).

    On the target's server a role that cannot create roles is refused: the declared state would run
    as the deploy role itself. Elsewhere (scratch.mode server or embedded: servers that hold nothing
    else) such a role builds as itself."""
    with _TerminateAsInterrupt():
        sweep(server.admin_url, connect_timeout_s)
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
        raise StopRequested

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
        self._defaults_set: set = set()  # the target's default privileges adopted so far (prepare)
        self._config: Config | None = None  # set by prepare: what load_desired makes beforehand
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
                try:  # whose it is, so that the next run drops it if this one is killed (leftovers.py)
                    cur.execute(f"COMMENT ON DATABASE {quote_ident(self.name)} IS %s", (identity_comment(),))
                except psycopg2.Error:
                    cur.execute(f"DROP DATABASE {quote_ident(self.name)}")
                    raise
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
        """What both the declared state and a copy of the target need before anything is loaded: roles,
        the external schemas, and the default privileges the deploy role's new objects get on the
        target. (The extensions differ: load_desired makes those listed in reconcile.yaml, the copy
        those of the target, copy_target_extensions.)"""
        environment = self.server.environment
        self._config = config
        self._create_roles(config.roles, "listed under roles: in reconcile.yaml")
        self._create_roles(environment.roles, "named by a declared file")
        self._create_roles(sorted(environment.grantees), "granted to by the target's privileges")
        if environment.external_schemas:
            self._load_external(environment)
        self._adopt_default_privileges(before_load=True)

    def _create_roles(self, roles, why: str) -> None:
        """Roles are the server's, so the admin makes them, and only on a server that is not the
        target's (there, creating one would change the target's server)."""
        with connected(self.server.admin_url, self.connect_timeout_s) as conn, conn.cursor() as cur:
            for role in roles:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cur.fetchone() is not None:
                    continue
                if self.server.same_server_as_target:
                    raise ScratchError(f"role {role!r} ({why}) does not exist on the target's server; create it there first")
                cur.execute(f"CREATE ROLE {quote_ident(role)} NOLOGIN")

    def _create_extensions(self, extensions, why: str) -> None:
        """(extension, schema or None, version or None): made by the build role, which then owns them as
        the deploy role owns what its plans create (so a rehearsed DROP EXTENSION runs as it will on
        the target); one it may not make (not trusted) by a superuser admin."""
        if not extensions:
            return
        admin = self.server.builder is not None and self.server.admin_is_superuser
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for extension, schema, version in extensions:
                    statement = f"CREATE EXTENSION IF NOT EXISTS {quote_ident(extension)}"
                    if schema:
                        statement += f" WITH SCHEMA {quote_ident(schema)}"
                    if version:
                        statement += f" VERSION {quote_literal(version)}"
                    try:
                        try:
                            cur.execute(statement)
                        except psycopg2.errors.InsufficientPrivilege:
                            if not admin:
                                raise
                            with connected(with_database(self.server.admin_url, self.name),
                                           self.connect_timeout_s) as by_admin, by_admin.cursor() as admin_cur:
                                admin_cur.execute(statement)
                    except psycopg2.Error as exc:
                        raise ScratchError(f"extension {extension!r} ({why}) cannot be created in the "
                                           f"scratch database: {first_line(exc)}") from exc
        finally:
            conn.close()

    def _declared_extensions(self, desired: DesiredState) -> None:
        """Before the declared files run: the extensions reconcile.yaml lists that no declared file
        creates (one that does makes its own, so it never meets one made here: "already exists").
        Where the target has one, it is made as there (its schema, its version), so that the declared
        state keeps it as it is; else where CREATE EXTENSION puts it."""
        config = self._config
        if config is None or not config.extensions:
            return
        created = {name for name, _ in infer(desired.sources, config).extensions}
        wanted = [name for name in config.extensions if name not in created]
        if not wanted:
            return
        environment = self.server.environment
        with connected(self.url, self.connect_timeout_s) as conn, conn.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace")
            schemas = {row[0] for row in cur.fetchall()}
            extensions = []
            for name in wanted:
                on_target = environment.extension(name)
                if on_target is None:
                    extensions.append((name, None, None))
                    continue
                _, schema, version = on_target
                if schema not in schemas and schema in config.scope.schemas:
                    # A managed schema the declared files create later (their CREATE SCHEMA would then
                    # fail): made where CREATE EXTENSION puts it instead.
                    extensions.append((name, None, version))
                    continue
                # Outside the managed schemas, a schema of the target's environment: made here too.
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                extensions.append((name, schema, version))
        self._create_extensions(extensions, "listed under extensions: in reconcile.yaml")

    def create_listed_extensions(self, desired: DesiredState) -> None:
        """After prepare, in a database that stays empty of declared objects (where 'check' replays the
        plans from the start): the extensions the target has before any plan runs, those reconcile.yaml
        lists that no declared file creates."""
        self._declared_extensions(desired)

    def copy_target_extensions(self, config: Config) -> None:
        """The target's extensions that the copy of its managed schemas needs, before its dump is loaded
        (pg_dump --schema leaves extensions out): those in the managed schemas, and those the declared
        state uses elsewhere (listed under extensions:, or created by a declared file); each in its
        schema, at its version, so that the copy is faithful."""
        named = set(config.extensions) | set(config.declared_extensions)
        wanted = [(name, schema, version) for name, schema, version in self.server.environment.extensions
                  if schema in config.scope.schemas or name in named]
        if not wanted:
            return
        with connected(self.url, self.connect_timeout_s) as conn, conn.cursor() as cur:
            for schema in sorted({schema for _, schema, _ in wanted}):
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        self._create_extensions(wanted, "installed on the target")

    def _load_external(self, environment: TargetEnvironment) -> None:
        """The external schemas: their extensions, then their definitions: the target's, dumped, or,
        for a command without a target (policy tests), external/<schema>.sql (admitted, inert, like
        declared files)."""
        with connected(self.url, self.connect_timeout_s) as conn, conn.cursor() as cur:
            for schema in environment.external_schemas:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        self._create_extensions([(name, schema, None) for name, schema in environment.external_extensions],
                                "in an external schema on the target")
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                try:
                    if environment.external_sql:
                        run_dump(cur, environment.external_sql)
                except psycopg2.Error as exc:
                    raise ScratchError(
                        f"cannot reproduce the external schemas ({', '.join(environment.external_schemas)}) in a "
                        f"scratch database: {first_line(exc)}"
                    ) from exc
                for source in environment.external_files:
                    _load_source(cur, source, self.inert)
        finally:
            conn.close()

    def _adopt_default_privileges(self, before_load: bool, grant_existing: bool = False) -> None:
        """The deploy role's default privileges on the target, made the build role's own here: what the
        declared files (and a rehearsed plan) create gets the grants it will get on the target.
        Before loading, those for the schemas that exist then; after, the rest (their schemas made by
        the load), and with `grant_existing` granted on what the load made in them too."""
        environment = self.server.environment
        if not environment.default_privileges:
            return
        with connected(self.url, self.connect_timeout_s) as conn, conn.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace")
            schemas = {row[0] for row in cur.fetchall()}
            for entry in environment.default_privileges:
                if entry in self._defaults_set or (entry.schema is not None and entry.schema not in schemas):
                    continue
                cur.execute(entry.statement())
                self._defaults_set.add(entry)
                if not before_load and grant_existing and entry.on_existing() is not None:
                    cur.execute(entry.on_existing())

    def load_desired(self, desired: DesiredState) -> None:
        """Make the extensions the declared files need but do not create; run the admitted declared
        statements, inert; then put the functions' bodies back; then what the target would have given
        them (its default privileges and grants)."""
        self._declared_extensions(desired)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for source in desired.sources:
                    _load_source(cur, source, self.inert)
            self.inert.restore(conn)
        finally:
            conn.close()
        self._adopt_default_privileges(before_load=False, grant_existing=True)
        self.replay_target_grants()

    def replay_target_grants(self) -> None:
        """The target's grants on its tables, views and sequences, on those of the same name here
        (grants not managed: they stay on the target as they are), so that the lint and the policy
        tests see who may read what on the target."""
        grants = self.server.environment.grants
        if not grants:
            return
        with connected(self.url, self.connect_timeout_s) as conn, conn.cursor() as cur:
            for grant in grants:
                cur.execute("SELECT to_regclass(%s)", (grant.relation,))
                if cur.fetchone()[0] is not None:
                    cur.execute(grant.statement())

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
        dumped = dump_schemas(source_url, schemas, "the target's schema")
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                run_dump(cur, dumped)
        except psycopg2.Error as exc:
            raise ScratchError(f"cannot rebuild the target's schema in a scratch database: {first_line(exc)}") from exc
        finally:
            conn.close()
        self._adopt_default_privileges(before_load=False)  # for what the plan creates in its schemas


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

