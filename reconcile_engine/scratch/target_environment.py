"""Stage 2: what a scratch database must have from the target besides the declared state, read once
per run: the external schemas the declared state references but never owns (Supabase's auth.uid()),
the extensions in them, the target's other extensions (a faithful copy of the target has them, in
their schemas, before its dump is loaded), the roles the declared files name that the target has,
the default privileges that the deploy role's new objects get, and the grants already on the
target's objects. With them, what is built, linted and tested in a scratch database behaves as it
will on the target.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from ..config import Config
from ..connections import connected
from ..declared.files import EXTERNAL_FOLDER, SqlSource, read_external_definition
from ..errors import ScratchError
from ..sqltext import quote_ident
from .schema_dump import dump_schemas

# pg_default_acl's object types, as ALTER DEFAULT PRIVILEGES names them.
DEFAULT_ACL_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}
# Privileges every role has on a new object of the type unless a global default revokes them.
BUILT_IN_PUBLIC = {"f": "EXECUTE", "T": "USAGE"}


@dataclasses.dataclass(frozen=True)
class DefaultPrivilege:
    """One grant the deploy role's new objects get (ALTER DEFAULT PRIVILEGES)."""

    schema: str | None  # None: in every schema
    object_type: str  # pg_default_acl.defaclobjtype: r, S, f, T, n
    privilege: str
    grantee: str | None  # None: PUBLIC
    revoke: bool = False  # a global default that takes away a built-in PUBLIC privilege

    def statement(self) -> str:
        schema = f" IN SCHEMA {quote_ident(self.schema)}" if self.schema else ""
        grantee = quote_ident(self.grantee) if self.grantee else "PUBLIC"
        objects = DEFAULT_ACL_OBJECTS[self.object_type]
        if self.revoke:
            return f"ALTER DEFAULT PRIVILEGES{schema} REVOKE {self.privilege} ON {objects} FROM {grantee}"
        return f"ALTER DEFAULT PRIVILEGES{schema} GRANT {self.privilege} ON {objects} TO {grantee}"

    def on_existing(self) -> str | None:
        """The same grant on what already exists in its schema (as if the default had been set first)."""
        if self.schema is None or self.object_type not in ("r", "S", "f"):
            return None
        objects = DEFAULT_ACL_OBJECTS[self.object_type]
        grantee = quote_ident(self.grantee) if self.grantee else "PUBLIC"
        verb, to = ("REVOKE", "FROM") if self.revoke else ("GRANT", "TO")
        return f"{verb} {self.privilege} ON ALL {objects} IN SCHEMA {quote_ident(self.schema)} {to} {grantee}"


@dataclasses.dataclass(frozen=True)
class ObjectGrant:
    """A grant on one of the target's tables, views or sequences in the managed schemas."""

    relation: str  # quoted, qualified
    is_sequence: bool
    privilege: str
    grantee: str | None  # None: PUBLIC

    def statement(self) -> str:
        kind = "SEQUENCE" if self.is_sequence else "TABLE"
        grantee = quote_ident(self.grantee) if self.grantee else "PUBLIC"
        return f"GRANT {self.privilege} ON {kind} {self.relation} TO {grantee}"


@dataclasses.dataclass(frozen=True)
class TargetEnvironment:
    external_schemas: tuple[str, ...] = ()
    external_extensions: tuple[tuple[str, str], ...] = ()  # (extension, schema) in external schemas
    external_sql: str = ""  # the external schemas' definitions, dumped from the target
    external_files: tuple[SqlSource, ...] = ()  # or, without a target, external/<schema>.sql
    default_privileges: tuple[DefaultPrivilege, ...] = ()
    grants: tuple[ObjectGrant, ...] = ()  # only when grants are not managed (else the declared ones hold)
    # The target's extensions outside pg_catalog and the external schemas: (extension, schema, version).
    extensions: tuple[tuple[str, str, str], ...] = ()
    # Roles the declared files name (config.referenced_roles, not under roles:) that the target has, or
    # without a target all of them: made on a scratch server that is not the target's.
    roles: tuple[str, ...] = ()

    def extension(self, name: str) -> tuple[str, str, str] | None:
        """(extension, schema, version) of `name` on the target, or None."""
        return next((e for e in self.extensions if e[0] == name), None)

    @property
    def grantees(self) -> set[str]:
        return {p.grantee for p in (*self.default_privileges, *self.grants) if p.grantee}

    def privileges_digest(self) -> str:
        """What the desired state's lint depends on, for the desired-state cache key."""
        parts = [dataclasses.astuple(p) for p in (*self.default_privileges, *self.grants)]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


_DEFAULT_PRIVILEGES = """
    SELECT n.nspname, d.defaclobjtype::text, a.privilege_type,
           CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END
    FROM pg_default_acl d
    LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
    CROSS JOIN LATERAL aclexplode(d.defaclacl) a
    WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
      AND a.grantee <> d.defaclrole  -- the owner's own rights: the build role owns what it builds
      AND (d.defaclnamespace = 0 OR n.nspname = ANY(%(schemas)s))
    ORDER BY 1 NULLS FIRST, 2, 3, 4 NULLS FIRST
"""

# Which global entries leave out a built-in PUBLIC privilege (they replace the built-in defaults).
_REVOKED_BUILT_INS = """
    SELECT d.defaclobjtype::text
    FROM pg_default_acl d
    WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND d.defaclnamespace = 0
      AND d.defaclobjtype IN ('f', 'T')
      AND NOT EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) a WHERE a.grantee = 0)
    ORDER BY 1
"""

_GRANTS = """
    SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind = 'S', a.privilege_type,
           CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL aclexplode(c.relacl) a
    WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND a.grantee <> c.relowner
    ORDER BY 1, 3, 4 NULLS FIRST
"""

_EXTERNAL = """
    SELECT n.nspname, (SELECT coalesce(array_agg(e.extname::text ORDER BY e.extname), '{}')
                       FROM pg_extension e WHERE e.extnamespace = n.oid)
    FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)
"""


# pg_catalog's (plpgsql) come with every database.
_EXTENSIONS = """
    SELECT e.extname, n.nspname, e.extversion
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE n.nspname <> 'pg_catalog' AND NOT n.nspname = ANY(%(external)s)
    ORDER BY 1
"""

_ROLES = "SELECT rolname FROM pg_roles WHERE rolname = ANY(%(roles)s)"


def _read_privileges(config: Config, cur) -> tuple[tuple[DefaultPrivilege, ...], tuple[ObjectGrant, ...]]:
    schemas = {"schemas": list(config.managed_schemas)}
    cur.execute(_DEFAULT_PRIVILEGES, schemas)
    defaults = [DefaultPrivilege(*row) for row in cur.fetchall()]
    cur.execute(_REVOKED_BUILT_INS)
    defaults += [DefaultPrivilege(None, kind, BUILT_IN_PUBLIC[kind], None, revoke=True) for (kind,) in cur.fetchall()]
    grants = ()
    if not config.privileges:
        cur.execute(_GRANTS, schemas)
        grants = tuple(ObjectGrant(*row) for row in cur.fetchall())
    return tuple(defaults), grants


def privileges_digest(config: Config, target_url: str) -> str:
    """The digest of what the lint of a desired state built for this target depends on (the
    desired-state cache key), without dumping the external schemas."""
    with connected(target_url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        defaults, grants = _read_privileges(config, cur)
    return TargetEnvironment(default_privileges=defaults, grants=grants).privileges_digest()


def read_target_environment(config: Config, target_url: str) -> TargetEnvironment:
    """Read-only: the target's external schemas (dumped), extensions, the roles the declared files name,
    default privileges and grants."""
    with connected(target_url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        defaults, grants = _read_privileges(config, cur)
        present: dict[str, list[str]] = {}
        if config.external_schemas:
            cur.execute(_EXTERNAL, {"schemas": list(config.external_schemas)})
            present = dict(cur.fetchall())
        cur.execute(_EXTENSIONS, {"external": list(config.external_schemas)})
        target_extensions = tuple(cur.fetchall())
        named = [(role, where) for role, where in config.referenced_roles if role not in config.roles]
        cur.execute(_ROLES, {"roles": [role for role, _ in named]})
        on_target = {row[0] for row in cur.fetchall()}
    for role, where in named:
        if role not in on_target:
            # Found now rather than when the file is loaded: on a scratch server of its own the role
            # may exist, and the plan would pass its rehearsal, then fail on the target.
            raise ScratchError(f"role {role!r} (named in {where}) does not exist on the target's server; "
                               f"create it there first")
    missing = [schema for schema in config.external_schemas if schema not in present]
    if missing:
        # What is planned against them must apply on the target: a definition from elsewhere would let
        # a plan pass its rehearsal and then fail there.
        raise ScratchError(
            f"external schema {missing[0]!r} (external_schemas: in reconcile.yaml) does not exist on the target; "
            f"create it there, or remove it from external_schemas"
        )
    dumped = dump_schemas(target_url, config.external_schemas,
                          f"the external schemas ({', '.join(config.external_schemas)})") if present else ""
    extensions = tuple((extension, schema) for schema in config.external_schemas for extension in present[schema])
    return TargetEnvironment(config.external_schemas, extensions, dumped, (), defaults, grants, target_extensions,
                             tuple(role for role, _ in named))


def without_target(config: Config) -> TargetEnvironment:
    """For commands that run without a target (policy tests, on a server of their own): the external
    schemas from files, and every role the declared files name."""
    roles = tuple(role for role, _ in config.referenced_roles if role not in config.roles)
    return TargetEnvironment(config.external_schemas, external_files=external_files(config), roles=roles)


def external_files(config: Config) -> tuple[SqlSource, ...]:
    """external/<schema>.sql for each external schema."""
    files = []
    for schema in config.external_schemas:
        source = read_external_definition(config, schema)
        if source is None:
            raise ScratchError(
                f"external schema {schema!r} (external_schemas: in reconcile.yaml): without a target its "
                f"definition is read from {EXTERNAL_FOLDER}/{schema}.sql, which does not exist: write it "
                f"(pg_dump --schema-only --schema {schema} of the real database), or give --database-url"
            )
        source.statements  # noqa: B018 (admitted now: nothing runs unless all of it is admitted)
        files.append(source)
    return tuple(files)
