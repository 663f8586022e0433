"""Stage 1c: what the declared files say about the configuration, so that reconcile.yaml lists only
what the files need but do not create: the schemas they create become managed schemas, the
extensions they create are made by the files themselves (never beforehand in a scratch database),
and the roles they name (GRANT ... TO, CREATE POLICY ... TO, ALTER DEFAULT PRIVILEGES) are looked for
on the target and, on a separate scratch server, created there like those under roles:.

Read with pglast from the admitted statements, never by matching text. The declared files are
untrusted: a CREATE SCHEMA of a schema reconcile must never manage (PostgreSQL's own, reconcile's
history, an excluded or external one) would make every object in it a candidate for removal, so it is
refused with its file and line.
"""

from __future__ import annotations

import dataclasses
import json

from ..config import CONVERSION_SCHEMA, TOOL_SCHEMA, Config
from ..errors import RefusedStatementError
from ..version import engine_digest
from . import memo
from .admission import line_at
from .files import REQUIRED_FOLDER, SqlSource, read_sources

# PostgreSQL's own schemas (the pg_ prefix is reserved for them: pg_catalog, pg_toast, pg_temp_N...).
SYSTEM_SCHEMAS = ("information_schema",)
SYSTEM_PREFIX = "pg_"
# The statements that create a schema or an extension, or may name a role.
_CREATING = frozenset({"CreateSchemaStmt", "CreateExtensionStmt"})
_NAMING_ROLES = frozenset({"GrantStmt", "CreatePolicyStmt", "AlterPolicyStmt", "AlterDefaultPrivilegesStmt",
                           "CreateSchemaStmt"})


@dataclasses.dataclass(frozen=True)
class Inferred:
    """Each name with where the declared files first name it ("schema/app.sql:3")."""

    schemas: tuple[tuple[str, str], ...] = ()
    extensions: tuple[tuple[str, str], ...] = ()
    roles: tuple[tuple[str, str], ...] = ()


def with_inferred(config: Config) -> Config:
    """The config with what the project's declared files create or name added (see the module's
    docstring); a project without schema/ infers nothing."""
    if not (config.project_dir / REQUIRED_FOLDER).is_dir():
        return config
    found = _remembered(config, read_sources(config, None))
    schemas = tuple(name for name, _ in found.schemas if name not in config.managed_schemas)
    return dataclasses.replace(
        config,
        managed_schemas=config.managed_schemas + schemas,
        declared_schemas=schemas,
        declared_extensions=tuple(name for name, _ in found.extensions),
        referenced_roles=found.roles,
    )


def _remembered(config: Config, sources: list[SqlSource]) -> Inferred:
    """infer(), remembered for unchanged files (memo.py): the same files, the same schemas that can never
    be managed, and the same code reading them."""
    store = memo.MemoStore(config.cache_dir / memo.FOLDER, "inferred")
    key = memo.key_of({
        "code": engine_digest(),
        "excluded_schemas": list(config.excluded_schemas),
        "external_schemas": list(config.external_schemas),
        "sources": [[source.display, source.sql] for source in sources],
    })
    value = store.get(key)
    if value is not None:
        try:
            return Inferred(*(tuple((str(name), str(where)) for name, where in value[part])
                              for part in ("schemas", "extensions", "roles")))
        except (KeyError, TypeError, ValueError):
            pass
    found = infer(sources, config)
    store.put(key, {part: [list(pair) for pair in getattr(found, part)] for part in ("schemas", "extensions", "roles")})
    return found


def infer(sources: list[SqlSource] | tuple[SqlSource, ...], config: Config) -> Inferred:
    """Admits every statement of `sources` (raising on the first refused, as a build would), then
    reads the schemas and extensions they create and the roles they name."""
    from pglast import parser as pg_parser

    schemas: dict[str, str] = {}
    extensions: dict[str, str] = {}
    roles: dict[str, str] = {}
    for source in sources:
        for statement in source.statements:
            if statement.node_type not in _CREATING | _NAMING_ROLES:
                continue
            where = f"{source.label}:{line_at(source.sql, statement.start)}"
            [tree] = json.loads(pg_parser.parse_sql_json(statement.text))["stmts"]
            [(node_type, node)] = tree["stmt"].items()
            if node_type == "CreateSchemaStmt":
                schemas.setdefault(_schema_created(node, where, config), where)
            elif node_type == "CreateExtensionStmt":
                extensions.setdefault(node["extname"], where)
            for role in _roles_named(node):
                roles.setdefault(role, where)
    return Inferred(tuple(schemas.items()), tuple(extensions.items()), tuple(roles.items()))


def _schema_created(node: dict, where: str, config: Config) -> str:
    name = node.get("schemaname")
    if not name:
        # CREATE SCHEMA AUTHORIZATION CURRENT_ROLE: named after whoever runs it, which is the build
        # role in a scratch database and the deploy role on the target.
        _refuse(where, "CREATE SCHEMA without a name",
                "its name would be the role that runs it, which is not the same in a scratch database and "
                "on the target: name the schema")
    reason = _never_managed(name, config)
    if reason:
        _refuse(where, f"CREATE SCHEMA {name}", reason + "; a schema a declared file creates becomes a managed "
                                                         "schema, whose undeclared objects plans remove")
    return name


def _never_managed(name: str, config: Config) -> str | None:
    """Why reconcile must never manage schema `name`, or None."""
    if name.startswith(SYSTEM_PREFIX) or name in SYSTEM_SCHEMAS:
        return f"{name} is PostgreSQL's own schema"
    if name == TOOL_SCHEMA:
        return f"{name} is reconcile's own schema (the history of what was applied)"
    if name == CONVERSION_SCHEMA:
        return f"{name} is reconcile's own schema (where a table converted to partitions is built)"
    if name in config.excluded_schemas:
        return f"{name} is listed under excluded_schemas: in reconcile.yaml, so reconcile never touches it"
    if name in config.external_schemas:
        return (f"{name} is listed under external_schemas: in reconcile.yaml, the target's schema that the "
                f"declared state references but never owns")
    return None


def _refuse(where: str, kind: str, reason: str):
    raise RefusedStatementError(f"{where}: {kind} is not allowed in a declared file: {reason}")


def _roles_named(node) -> list[str]:
    """Every role named by name anywhere in a statement's tree (PUBLIC and CURRENT_ROLE are no names)."""
    found = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            spec = item.get("RoleSpec")
            if isinstance(spec, dict) and spec.get("roletype") == "ROLESPEC_CSTRING" and spec.get("rolename"):
                found.append(spec["rolename"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(set(found))
