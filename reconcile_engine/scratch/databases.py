"""Stage 2: scratch databases (on the scratch space of space.py). The desired state is built in one;
rehearsals run in another.

A scratch database is made when first used (from template0, or from a template database or a kept
state of layers.py, which it then needs no copy of) and is dropped: on success, on error and on
Ctrl-C, unless it is kept as a state (layers.py); one a run killed with SIGKILL leaves, the next run
drops (leftovers.py: each names its run in its COMMENT). What runs in it runs as the run's temporary
build role (buildrole.py), inert (inert.py).

Made when first used, not when the `with` block opens: a database made empty only to be dropped for a
template was a DROP DATABASE, and every DROP DATABASE makes the server checkpoint at once and wait for
it, which, after a database of thousands of tables was made, is tens of thousands of files to sync.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable

import psycopg2
import psycopg2.errors

from ..config import Config
from ..connections import connect, connected, describe, first_line, with_database
from ..declared.files import DesiredState
from ..declared.inference import infer
from ..errors import ScratchError
from ..inspection.snapshot import differences_in, fingerprint_of, take_snapshot
from ..sqltext import quote_ident, quote_literal
from .build_role import check_login
from .declared_load import load_source
from .inert import InertFunctions
from .layers import OWNER_ROLE, LayerStore, first_layer
from .leftovers import SCRATCH_PREFIX, identity_comment
from .schema_dump import dump_schemas, run_dump
from .space import ScratchServer, TerminateAsInterrupt
from .target_environment import TargetEnvironment

log = logging.getLogger(__name__)


class ScratchDatabase:
    """A uniquely named, temporary database: `with ScratchDatabase(server, 'desired') as db: db.url`."""

    def __init__(self, server: ScratchServer, purpose: str, connect_timeout_s: int = 10):
        self.server = server
        self.name = f"{SCRATCH_PREFIX}{purpose}_{os.getpid()}_{secrets.token_hex(4)}"
        self.connect_timeout_s = connect_timeout_s
        # What the scratch database holds runs as the build role; the admin only creates and drops it.
        self._url = self._url_of(self.name)
        self.inert = InertFunctions()  # functions stubbed in it, until their bodies are put back
        self._signals = TerminateAsInterrupt()
        self._dropping: threading.Thread | None = None
        self._defaults_set: set = set()  # the target's default privileges adopted so far (prepare)
        self._config: Config | None = None  # set by prepare: what load_desired makes beforehand
        self._drop_error: Exception | None = None
        self.run_as: str | None = None  # the role its sessions build as (layers.OWNER_ROLE), if not the build role
        self.made_from_template = False  # whether a template made it (layers.py): load_desired, start_from
        self.layers: LayerStore | None = None  # use_layers
        # Making it (when first used), making it again (start_over, a template) and leaving the `with`
        # block exclude each other: a copy still being made on another thread when the block is left
        # must not make it again after it was dropped (it would outlive the run, and its build role).
        # Re-entrant: preparing a database just made connects to it.
        self._remaking = threading.RLock()
        self._left = False
        self._exists = False
        self._recording: threading.Thread | None = None  # a layer's record being written (_keep_layer)
        self._checking: threading.Thread | None = None  # the template it was made from being checked (_from_layer)

    @property
    def url(self) -> str:
        """Its URL, for its build role; the database is made first if it was not yet (see the module)."""
        self._made()
        return self._url

    def _made(self) -> None:
        """Make it from template0 and prepare it inside (prepare), unless it exists already."""
        with self._remaking:
            if self._exists:
                return
            self._create()
            if self._config is not None:
                self._prepare_inside(self._config)

    def _admin(self):
        return connect(self.server.admin_url, self.connect_timeout_s)

    def __enter__(self) -> "ScratchDatabase":
        self._signals.__enter__()
        return self

    def _remake(self, template: str = "template0") -> None:
        """Make it (again, if it was made: dropped first) from `template`."""
        with self._remaking:
            if self._exists:
                self._drop()
                self._exists = False
            self._create(template=template)

    def take_over(self, database: str) -> bool:
        """Become `database` (a kept state of layers.py, no session connected to it) by renaming it,
        when this one was not made yet: no copy of it is written. False when it was, or when the
        rename is refused (another run uses it); the caller makes it from the template instead."""
        with self._remaking:
            if self._left:
                raise ScratchError(f"the scratch database {self.name} is no longer needed: not made again")
            if self._exists:
                return False
            try:
                self._as_admin(f"ALTER DATABASE {quote_ident(database)} RENAME TO {quote_ident(self.name)}")
            except psycopg2.Error as exc:
                log.info("a kept copy of the target was copied, not taken over: %s", first_line(exc))
                return False
            self._exists = True
            try:  # this run's now: dropped by the next run if this one is killed (leftovers.py)
                self._as_admin(f"COMMENT ON DATABASE {quote_ident(self.name)} IS {quote_literal(identity_comment())}")
            except psycopg2.Error:
                pass  # kept states are named apart from scratch databases: a leftover only if it is not kept again
        self._check_login()
        return True

    def _create(self, template: str = "template0") -> None:
        """CREATE DATABASE (refused once the `with` block was left), then the build role's first login."""
        if self._left:
            raise ScratchError(f"the scratch database {self.name} is no longer needed: not made again")
        builder = self.server.builder
        owner = f" OWNER {quote_ident(self.run_as or builder.name)}" if builder else ""
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {quote_ident(self.name)}{owner} TEMPLATE {quote_ident(template)}")
                try:  # whose it is, so that the next run drops it if this one is killed (leftovers.py)
                    cur.execute(f"COMMENT ON DATABASE {quote_ident(self.name)} IS %s", (identity_comment(),))
                except psycopg2.Error:
                    cur.execute(f"DROP DATABASE {quote_ident(self.name)}")
                    raise
        except psycopg2.Error as exc:
            raise ScratchError(
                f"cannot create a scratch database on {describe(self.server.admin_url)}: {first_line(exc)} "
                f"(the role needs CREATEDB, or set scratch.mode in reconcile.yaml)"
            ) from exc
        finally:
            conn.close()
        self._exists = True
        self._check_login()

    def _check_login(self) -> None:
        """Once per scratch server: that the build role can log in to a database it made (pg_hba)."""
        builder = self.server.builder
        if builder is None or self.server.login_checked:
            return
        check_login(builder, self.server.admin_url, self.name, self.connect_timeout_s)
        self.server.login_checked = True

    def start_over(self) -> None:
        """Drop it, to be made again when next used, empty, prepared as before (prepare): a copy of the
        target that came out wrong is made again another way."""
        with self._remaking:
            if self._exists:
                self._drop()
                self._exists = False
            self.inert = InertFunctions()
            self._defaults_set = set()
            self.made_from_template = False
            if self._config is not None:
                self.prepare(self._config)

    def __exit__(self, *exc_info) -> bool:
        with self._remaking:
            self._left = True
        for reading in (self._recording, self._checking):
            if reading is not None:
                reading.join()  # before the build role that reads it goes
        try:
            if self._dropping is None:
                if self._exists:
                    self._drop()
            else:
                self._dropping.join()
                if self._drop_error is not None and exc_info[0] is None:
                    raise self._drop_error
        finally:
            self._signals.__exit__(*exc_info)
        return False

    def _as_admin(self, statement: str) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def _drop(self) -> None:
        self._as_admin(f"DROP DATABASE IF EXISTS {quote_ident(self.name)} WITH (FORCE)")

    def drop_in_background(self) -> None:
        """Start dropping it now, while other work goes on (it is no longer needed); leaving the
        `with` block waits for the drop to finish."""

        if not self._exists:
            return

        def drop() -> None:
            try:
                self._drop()
            except Exception as exc:  # reported by __exit__, in the main thread
                self._drop_error = exc

        self._dropping = threading.Thread(target=drop, name=f"drop {self.name}", daemon=True)
        self._dropping.start()

    def connect(self, autocommit: bool = True):
        return self._connect_to(self.url, autocommit)

    def _url_of(self, database: str) -> str:
        """A database of the scratch server, for the build role (the admin's URL where there is none)."""
        builder = self.server.builder
        return builder.url(self.server.admin_url, database) if builder else with_database(self.server.admin_url, database)

    def _connect_to(self, url: str, autocommit: bool = True):
        # A scratch database is thrown away after use: its commits need not wait for the disk.
        role = f" -c role={self.run_as}" if self.run_as else ""
        return connect(url, self.connect_timeout_s, autocommit=autocommit, settings=f"-c synchronous_commit=off{role}")

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
        with self._remaking:
            if self._exists:
                self._prepare_inside(config)
            # else when it is made from template0 (_made); a template or kept state holds it already

    def _prepare_inside(self, config: Config) -> None:
        """prepare's part inside the database: the external schemas, the default privileges."""
        environment = self.server.environment
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
                    load_source(cur, source, self.inert)
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

    def use_layers(self, layers: LayerStore | None) -> None:
        """Before prepare: build the declared state on template layers (layers.py). What is made in it
        is then made as layers.OWNER_ROLE, which outlives the build role, and it belongs to that role."""
        if layers is None:
            return
        self.layers = layers
        if self.server.builder is not None:
            with self._remaking:
                if self._exists:
                    self._as_admin(f"ALTER DATABASE {quote_ident(self.name)} OWNER TO {quote_ident(OWNER_ROLE)}")
                self.run_as = OWNER_ROLE  # else the owner it is made with (_create)

    def load_desired(self, desired: DesiredState) -> None:
        """Make the extensions the declared files need but do not create; run the admitted declared
        statements, inert; then put the functions' bodies back; then what the target would have given
        them (its default privileges and grants). On layers (use_layers), the first layer (schema/,
        partitions/) comes from its template database when one matches, and is kept as one otherwise.
        A template is checked while the rest is loaded on it (_from_layer); one that fails the check
        is forgotten, and the declared state is built again from the files."""
        sources, layers = desired.sources, self.layers
        first = first_layer(sources) if layers is not None else 0
        key = layers.key(self._config, self.server.environment, sources[:first]) if first else None
        template_checked = self._from_layer(layers, key) if key is not None else None
        if template_checked is not None:
            self._load_rest(sources[first:])
            if template_checked():
                return
            self._start_empty()
        self._declared_extensions(desired)
        if key is not None:
            self._load_sources(sources[:first])
            self._keep_layer(layers, key)
            sources = sources[first:]
        self._load_rest(sources)

    def _load_rest(self, sources) -> None:
        """The declared sources after the first layer, then the functions' bodies, then the target's
        default privileges and grants."""
        self._load_sources(sources)
        conn = self.connect()
        try:
            self.inert.restore(conn)
        finally:
            conn.close()
        self._adopt_default_privileges(before_load=False, grant_existing=True)
        self.replay_target_grants()

    def _load_sources(self, sources) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for source in sources:
                    load_source(cur, source, self.inert)
        finally:
            conn.close()

    def _read(self, read, database: str | None = None):
        """read(connection) on it, or on another `database` of its server (a template layer)."""
        conn = self._connect_to(self._url_of(database or self.name))
        try:
            return read(conn)
        finally:
            conn.close()

    def snapshot(self, scope=None):
        """Our own catalog snapshot of it (of `scope`, by default the one prepare was given)."""
        return self._read(lambda conn: take_snapshot(conn, scope or self._config.scope))

    def fingerprint(self, database: str | None = None) -> str:
        """Its catalog snapshot's fingerprint (or another `database`'s of its server), read without
        holding the snapshot (fingerprint_of)."""
        return self._read(lambda conn: fingerprint_of(conn, self._config.scope), database)

    def differences_from(self, expected, scope=None) -> list:
        """How it differs from the catalog snapshot `expected` (snapshot.differences_in: where it does
        not, no snapshot of it is held)."""
        return self._read(lambda conn: differences_in(conn, scope or self._config.scope, expected))

    def _keep_layer(self, layers: LayerStore, key: str) -> None:
        """The first layer just loaded, kept as a template database (no session is connected to this one);
        its snapshot is read from the template beside the rest of the load, and joined on leaving."""
        defaults = self.server.environment.default_privileges
        self._recording = layers.keep_layer(key, self.name, self.inert.pending(),
                                            [i for i, entry in enumerate(defaults) if entry in self._defaults_set],
                                            self.fingerprint)

    def _from_layer(self, layers: LayerStore, key: str) -> Callable[[], bool] | None:
        """Start again from the layer's template, if there is one. Returns the wait for its check: that
        the template still shows the snapshot recorded when it was made, read from the template on a
        thread of its own while the caller loads the rest on the copy (at 2,500 tables that read is
        about 2.5 s of a changed policy's plan). A copy is exactly its template as it was made, and
        none of this run's sessions changes a template. A template that fails the check is forgotten
        (dropped, made again by the next full build); None: no template was used."""
        layer = layers.find(key)
        if layer is None:
            return None
        defaults = self.server.environment.default_privileges
        try:
            inert = InertFunctions.resumed(layer.pending_stubs)
            self._remake(template=layer.database)
        except (ValueError, TypeError, psycopg2.Error, ScratchError) as exc:
            log.info("the first layer's template was not used: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
            self._start_empty()
            return None
        self.inert = inert
        self._defaults_set = {defaults[i] for i in layer.defaults_set if 0 <= i < len(defaults)}
        self.made_from_template = True
        outcome: dict = {}

        def check() -> None:
            try:
                outcome["shows"] = self.fingerprint(layer.database) == layer.fingerprint
            except Exception as exc:  # noqa: BLE001 (reported by the wait, in the caller's thread)
                outcome["error"] = exc

        self._checking = threading.Thread(target=check, name=f"check {layer.database}", daemon=True)
        self._checking.start()

        def wait() -> bool:
            self._checking.join()
            if outcome.get("shows"):
                return True
            if "error" in outcome:
                log.info("the first layer's template database %s could not be read (%s): built again from the "
                         "files", layer.database, first_line(outcome["error"]))
            else:
                log.info("the first layer's template database %s no longer shows the catalog it was made with: "
                         "built again from the files", layer.database)
            layers.forget(key)
            return False

        return wait

    def start_from(self, layers: LayerStore, key: str) -> bool:
        """A rehearsal's copy made again from a kept whole state (LayerStore.state_key), when there is
        one; the caller checks it shows the snapshot it should."""
        layer = layers.find(key)
        if layer is None or layer.pending_stubs:
            return False
        try:
            if self.take_over(layer.database):  # the kept state is this copy now: kept again after the rehearsal
                layers.handed_over(key)
            else:
                self._remake(template=layer.database)
        except (psycopg2.Error, ScratchError) as exc:
            log.info("a kept copy of the target was not used: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
            self._start_empty()
            return False
        self.inert = InertFunctions()
        self._defaults_set = set(self.server.environment.default_privileges)
        self.made_from_template = True
        return True

    def keep_as_state(self, layers: LayerStore, fingerprint: str) -> bool:
        """This database, whose catalog snapshot is `fingerprint`, kept as the template of a copy of a
        target in that state: renamed, not copied (a rehearsal's copy once the plan ran on it, for the
        target once the plan is applied; the declared state once its reverse plan ran on it, for the
        target as it is). Nothing may be connected to it. False when it was not kept (a state of that
        key is kept already, or the rename failed): it is the caller's to drop."""
        if not self._exists:
            return False
        kept = layers.keep_state(layers.state_key(fingerprint, self.server.environment), self.name, fingerprint)
        if kept:
            self._exists = False  # no longer this run's to drop
        return kept

    def _start_empty(self) -> None:
        """After a template that did not do: this database empty and prepared again, as when it was made."""
        run_as = self.run_as
        self.start_over()
        self.run_as = run_as

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
        self.adopt_default_privileges()

    def adopt_default_privileges(self) -> None:
        """The target's default privileges in the schemas made since prepare: for what the plan (or a
        copy of the target) creates in them."""
        self._adopt_default_privileges(before_load=False)
