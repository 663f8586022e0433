"""Stage 1b: admission. Declared SQL -> the statements allowed to run in a scratch database.

Declared files are untrusted input: a pull request writes them, and CI builds them with the deploy
role. So every statement is read with PostgreSQL's own parser (pglast) before anything runs, and
only statements that define schema objects are admitted. Anything else is refused with the file,
the line and the statement's kind: what runs, reads or writes rows, acts on databases, roles or the
server, changes who is running, or reaches outside the database. The README lists the kinds.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json


from ..errors import DeclaredStateError, RefusedStatementError

# -- why a kind of statement is refused ------------------------------------------------------------

RUNS_QUERIES = ("it runs a query or changes rows; declared files only define objects (a data change "
                "belongs in a reviewed data step: reconcile plan --data-before/--data-after FILE)")
DATABASES = "databases belong to the server, not to the schema; reconcile makes and drops its own scratch databases"
ROLES = ("roles are global to the server: create them outside reconcile (the roles a declared file grants "
         "to or names in a policy are then found on the target)")
SERVER = "it changes the server, for every database on it"
SESSION = "it changes who runs the statements that follow"
RUNS_CODE = "it runs code while the declared state is built"
TRANSACTIONS = "reconcile decides where transactions begin and end"
MAINTENANCE = "it maintains, locks or reads data rather than defining objects"
DROPS = ("declared files say what exists: to remove an object, delete its declaration and 'reconcile plan' "
         "plans the drop")
RENAMES = "declared files say what exists at the end: declare the object under its final name and schema"
OWNERSHIP = "ownership is not compared: objects belong to the role that applies the plan"
REMOTE = "it reaches other servers or data outside the database, which reconcile neither builds nor compares"
LANGUAGES = ("it loads code into the server; procedural languages and C functions come with extensions "
             "(list the extension under extensions: in reconcile.yaml)")
NOT_A_DEFINITION = "it is not a definition of a schema object"

# Node type -> (kind as the user wrote it, reason). Everything not named here or in DEFINITIONS is refused.
REFUSED = {
    "SelectStmt": ("SELECT", RUNS_QUERIES), "InsertStmt": ("INSERT", RUNS_QUERIES),
    "UpdateStmt": ("UPDATE", RUNS_QUERIES), "DeleteStmt": ("DELETE", RUNS_QUERIES),
    "MergeStmt": ("MERGE", RUNS_QUERIES), "CopyStmt": ("COPY", RUNS_QUERIES),
    "TruncateStmt": ("TRUNCATE", RUNS_QUERIES), "ExplainStmt": ("EXPLAIN", RUNS_QUERIES),
    "RefreshMatViewStmt": ("REFRESH MATERIALIZED VIEW", RUNS_QUERIES),
    "CallStmt": ("CALL", RUNS_CODE), "DoStmt": ("DO", RUNS_CODE), "LoadStmt": ("LOAD", LANGUAGES),
    "CreateEventTrigStmt": ("CREATE EVENT TRIGGER", "it runs a function on every later DDL statement"),
    "AlterEventTrigStmt": ("ALTER EVENT TRIGGER", "it runs a function on every later DDL statement"),
    "CreatePLangStmt": ("CREATE LANGUAGE", LANGUAGES), "CreateAmStmt": ("CREATE ACCESS METHOD", LANGUAGES),
    "CreatedbStmt": ("CREATE DATABASE", DATABASES), "DropdbStmt": ("DROP DATABASE", DATABASES),
    "AlterDatabaseStmt": ("ALTER DATABASE", DATABASES), "AlterDatabaseSetStmt": ("ALTER DATABASE ... SET", DATABASES),
    "AlterDatabaseRefreshCollStmt": ("ALTER DATABASE ... REFRESH COLLATION VERSION", DATABASES),
    "CreateRoleStmt": ("CREATE ROLE", ROLES), "AlterRoleStmt": ("ALTER ROLE", ROLES),
    "AlterRoleSetStmt": ("ALTER ROLE ... SET", ROLES), "DropRoleStmt": ("DROP ROLE", ROLES),
    "GrantRoleStmt": ("GRANT role", ROLES), "DropOwnedStmt": ("DROP OWNED", ROLES),
    "ReassignOwnedStmt": ("REASSIGN OWNED", ROLES),
    "AlterSystemStmt": ("ALTER SYSTEM", SERVER), "CheckPointStmt": ("CHECKPOINT", SERVER),
    "CreateTableSpaceStmt": ("CREATE TABLESPACE", SERVER), "DropTableSpaceStmt": ("DROP TABLESPACE", SERVER),
    "AlterTableSpaceOptionsStmt": ("ALTER TABLESPACE", SERVER),
    "AlterTableMoveAllStmt": ("ALTER ... ALL IN TABLESPACE", SERVER),
    "TransactionStmt": ("transaction control (BEGIN, COMMIT, ...)", TRANSACTIONS),
    "VacuumStmt": ("VACUUM/ANALYZE", MAINTENANCE), "ClusterStmt": ("CLUSTER", MAINTENANCE),
    "ReindexStmt": ("REINDEX", MAINTENANCE), "LockStmt": ("LOCK", MAINTENANCE),
    "ListenStmt": ("LISTEN", NOT_A_DEFINITION), "UnlistenStmt": ("UNLISTEN", NOT_A_DEFINITION),
    "NotifyStmt": ("NOTIFY", NOT_A_DEFINITION), "PrepareStmt": ("PREPARE", NOT_A_DEFINITION),
    "ExecuteStmt": ("EXECUTE", RUNS_QUERIES), "DeallocateStmt": ("DEALLOCATE", NOT_A_DEFINITION),
    "DeclareCursorStmt": ("DECLARE CURSOR", RUNS_QUERIES), "FetchStmt": ("FETCH", RUNS_QUERIES),
    "ClosePortalStmt": ("CLOSE", NOT_A_DEFINITION), "DiscardStmt": ("DISCARD", NOT_A_DEFINITION),
    "VariableShowStmt": ("SHOW", NOT_A_DEFINITION), "ConstraintsSetStmt": ("SET CONSTRAINTS", TRANSACTIONS),
    "DropStmt": ("DROP", DROPS), "DropSubscriptionStmt": ("DROP SUBSCRIPTION", DROPS),
    "DropUserMappingStmt": ("DROP USER MAPPING", DROPS),
    "RenameStmt": ("RENAME", RENAMES), "AlterObjectSchemaStmt": ("ALTER ... SET SCHEMA", RENAMES),
    "AlterOwnerStmt": ("ALTER ... OWNER TO", OWNERSHIP),
    "CreateFdwStmt": ("CREATE FOREIGN DATA WRAPPER", REMOTE), "AlterFdwStmt": ("ALTER FOREIGN DATA WRAPPER", REMOTE),
    "CreateForeignServerStmt": ("CREATE SERVER", REMOTE), "AlterForeignServerStmt": ("ALTER SERVER", REMOTE),
    "CreateForeignTableStmt": ("CREATE FOREIGN TABLE", REMOTE),
    "CreateUserMappingStmt": ("CREATE USER MAPPING", REMOTE), "AlterUserMappingStmt": ("ALTER USER MAPPING", REMOTE),
    "ImportForeignSchemaStmt": ("IMPORT FOREIGN SCHEMA", REMOTE),
    "CreatePublicationStmt": ("CREATE PUBLICATION", REMOTE), "AlterPublicationStmt": ("ALTER PUBLICATION", REMOTE),
    "CreateSubscriptionStmt": ("CREATE SUBSCRIPTION", REMOTE), "AlterSubscriptionStmt": ("ALTER SUBSCRIPTION", REMOTE),
    "SecLabelStmt": ("SECURITY LABEL", "security labels need a label provider loaded into the server"),
}

# Definitions of schema objects: admitted, some after a closer look (_CHECKS below).
DEFINITIONS = frozenset({
    "CreateStmt", "AlterTableStmt", "IndexStmt", "ViewStmt", "CreateTableAsStmt", "CreateSeqStmt",
    "AlterSeqStmt", "CreateSchemaStmt", "CreateFunctionStmt", "AlterFunctionStmt", "CreateTrigStmt",
    "CreatePolicyStmt", "AlterPolicyStmt", "CommentStmt", "GrantStmt", "AlterDefaultPrivilegesStmt",
    "CreateEnumStmt", "AlterEnumStmt", "CompositeTypeStmt", "CreateRangeStmt", "CreateDomainStmt",
    "AlterDomainStmt", "AlterTypeStmt", "DefineStmt", "CreateCastStmt", "CreateConversionStmt",
    "CreateOpClassStmt", "CreateOpFamilyStmt", "AlterOpFamilyStmt", "AlterOperatorStmt",
    "CreateStatsStmt", "AlterStatsStmt", "CreateTransformStmt", "AlterCollationStmt",
    "AlterTSConfigurationStmt", "AlterTSDictionaryStmt", "RuleStmt", "CreateExtensionStmt",
    "AlterExtensionStmt", "AlterExtensionContentsStmt", "AlterObjectDependsStmt", "VariableSetStmt",
})

# SET is admitted for the settings that shape how definitions are read (pg_dump writes these).
SETTINGS = frozenset({
    "search_path", "check_function_bodies", "client_min_messages", "client_encoding",
    "standard_conforming_strings", "default_table_access_method", "default_tablespace",
    "default_toast_compression", "xmloption", "statement_timeout", "lock_timeout",
    "idle_in_transaction_session_timeout", "transaction_timeout", "row_security", "timezone", "datestyle",
    "intervalstyle", "extra_float_digits", "escape_string_warning",
})
# Objects shared by every database of the server: a grant or comment on them acts outside the schema.
SHARED_OBJECTS = {
    "OBJECT_DATABASE": ("database", DATABASES), "OBJECT_ROLE": ("role", ROLES),
    "OBJECT_TABLESPACE": ("tablespace", SERVER), "OBJECT_PARAMETER_ACL": ("server parameter", SERVER),
    "OBJECT_SUBSCRIPTION": ("subscription", REMOTE), "OBJECT_PUBLICATION": ("publication", REMOTE),
    "OBJECT_FDW": ("foreign data wrapper", REMOTE), "OBJECT_FOREIGN_SERVER": ("foreign server", REMOTE),
    "OBJECT_LARGEOBJECT": ("large object", RUNS_QUERIES), "OBJECT_EVENT_TRIGGER": ("event trigger", RUNS_CODE),
    "OBJECT_LANGUAGE": ("language", LANGUAGES),
}
SERVER_CODE_LANGUAGES = ("c", "internal")
_CURRENT_ROLE_SPECS = ("ROLESPEC_CURRENT_ROLE", "ROLESPEC_CURRENT_USER", "ROLESPEC_SESSION_USER")


@dataclasses.dataclass(frozen=True)
class AdmittedStatement:
    """One declared statement that may run in a scratch database."""

    text: str  # as written (without the ';')
    start: int  # offset of `text` in its source's SQL, for file:line
    node_type: str  # pglast's name for it, e.g. "CreateFunctionStmt"


class _Refused(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(kind, reason)
        self.kind, self.reason = kind, reason


def line_at(text: str, index: int) -> int:
    """The 1-based line of `text` that character `index` is on. Looked up in the text's line starts,
    found once per text: counting from the start for each statement made a file of thousands of
    statements quadratic."""
    return bisect.bisect_left(_newlines(text), max(0, index)) + 1


@functools.lru_cache(maxsize=16)
def _newlines(text: str) -> list[int]:
    """Where each line feed of `text` is, in order."""
    found, at = [], text.find("\n")
    while at != -1:
        found.append(at)
        at = text.find("\n", at + 1)
    return found


# Kept: the files are admitted when the project is loaded (inference.py) and again when they are built.
@functools.lru_cache(maxsize=8192)
def admit(sql: str, label: str) -> tuple[AdmittedStatement, ...]:
    """The statements of `sql` (a declared file, or its rendering), each admitted or refused.

    Raises DeclaredStateError on a syntax error and RefusedStatementError on a statement that is not
    a definition, both naming `label:line`.
    """
    return _admitted(sql, label, _check, "a declared file")


# A policy test (policies/tests/*.yaml) is a query that runs as the application's role.
QUERIES = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})


def admit_queries(sql: str, label: str) -> tuple[AdmittedStatement, ...]:
    """The statements of a policy test's sql: queries only (no SET ROLE, no COPY, no DO, ...)."""
    return _admitted(sql, label, _check_query, "a policy test")


def _check_query(node_type: str, node: dict) -> None:
    if node_type not in QUERIES:
        kind = REFUSED.get(node_type, (node_type.removesuffix("Stmt"),))[0]
        if node_type == "VariableSetStmt":
            kind = f"SET {node.get('name', '')}".strip()
        raise _Refused(kind, "a policy test is a query that runs as the test's role "
                             "(SELECT, INSERT, UPDATE, DELETE or MERGE)")
    if node.get("intoClause"):
        raise _Refused("SELECT ... INTO", RUNS_QUERIES)


def _admitted(sql: str, label: str, check, where: str) -> tuple[AdmittedStatement, ...]:
    from pglast import parser as pg_parser  # loaded by the first admission: a cached drift admits nothing

    try:
        slices = pg_parser.split(sql, with_parser=True, only_slices=True)
        trees = json.loads(pg_parser.parse_sql_json(sql)).get("stmts", []) if slices else []
    except pg_parser.ParseError as exc:
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        raise DeclaredStateError(f"{label}:{line_at(sql, index)}: {exc.args[0]}") from exc
    if len(trees) != len(slices):  # both come from the same parser; a mismatch is a bug, not the user's
        raise AssertionError(f"{label}: {len(slices)} statements split but {len(trees)} parsed")
    admitted = []
    for piece, tree in zip(slices, trees):
        [(node_type, node)] = tree["stmt"].items()
        try:
            check(node_type, node)
        except _Refused as refused:
            raise RefusedStatementError(
                f"{label}:{line_at(sql, piece.start)}: {refused.kind} is not allowed in {where}: {refused.reason}"
            ) from None
        admitted.append(AdmittedStatement(sql[piece], piece.start, node_type))
    return tuple(admitted)


def _check(node_type: str, node: dict) -> None:
    if node_type in REFUSED:
        kind, reason = REFUSED[node_type]
        # ALTER DATABASE ... OWNER TO, ALTER ROLE ... RENAME: refused for what they act on.
        shared = SHARED_OBJECTS.get(node.get("objectType") or node.get("renameType") or "")
        raise _Refused(kind, shared[1] if shared else reason)
    if node_type not in DEFINITIONS:
        raise _Refused(node_type.removesuffix("Stmt"), NOT_A_DEFINITION)
    check = _CHECKS.get(node_type)
    if check is not None:
        check(node)


def _check_set(node: dict) -> None:
    name = (node.get("name") or "").lower()
    kind = node.get("kind", "VAR_SET_VALUE")
    if name in ("role", "session_authorization"):
        raise _Refused(f"SET {name.upper()}", SESSION)
    if kind in ("VAR_RESET_ALL", "VAR_SET_MULTI") or name not in SETTINGS:
        shown = "RESET ALL" if kind == "VAR_RESET_ALL" else f"SET {name or node.get('name', '')}".strip()
        raise _Refused(shown, f"it is not a setting that shapes how definitions are read "
                              f"(allowed: {', '.join(sorted(SETTINGS))})")


def _check_create_table_as(node: dict) -> None:
    if node.get("objtype") != "OBJECT_MATVIEW" or node.get("is_select_into"):
        raise _Refused("CREATE TABLE ... AS", RUNS_QUERIES)


def _check_function(node: dict) -> None:
    for option in node.get("options", ()):
        element = option.get("DefElem", {})
        if element.get("defname") == "language":
            language = element.get("arg", {}).get("String", {}).get("sval", "").lower()
            if language in SERVER_CODE_LANGUAGES:
                raise _Refused(f"a function in LANGUAGE {language}", LANGUAGES)


def _check_schema(node: dict) -> None:
    role = node.get("authrole")
    if role and role.get("roletype", "ROLESPEC_CSTRING") not in _CURRENT_ROLE_SPECS:
        raise _Refused("CREATE SCHEMA ... AUTHORIZATION", OWNERSHIP)
    for element in node.get("schemaElts", ()):
        [(node_type, inner)] = element.items()
        _check(node_type, inner)


def _check_alter_table(node: dict) -> None:
    for command in node.get("cmds", ()):
        if command.get("AlterTableCmd", {}).get("subtype") == "AT_ChangeOwner":
            raise _Refused("ALTER ... OWNER TO", OWNERSHIP)


def _check_shared_object(statement: str):
    def check(node: dict) -> None:
        shared = SHARED_OBJECTS.get(node.get("objtype", ""))
        if shared is not None:
            raise _Refused(f"{statement} on a {shared[0]}", shared[1])
    return check


_CHECKS = {
    "VariableSetStmt": _check_set,
    "CreateTableAsStmt": _check_create_table_as,
    "CreateFunctionStmt": _check_function,
    "CreateSchemaStmt": _check_schema,
    "AlterTableStmt": _check_alter_table,
    "GrantStmt": _check_shared_object("GRANT/REVOKE"),
    "CommentStmt": _check_shared_object("COMMENT"),
}
