"""Stage A2 (pull): pg_dump's text -> the definitions in it, each with its text and its parse tree.

What is not a definition is left out: the settings pg_dump starts with (SET, set_config), ownership,
the public schema itself (every database has one), extensions (reconcile.yaml lists them, the
scratch databases make them), default privileges (a role's, which scratch databases copy from the
target) and column options PostgreSQL does not define (a patched server's own bookkeeping). A
statement that admission would refuse in a declared file is left out with a note, so that what pull
writes always loads.
"""

from __future__ import annotations

import dataclasses
import json

from pglast import parser as pg_parser

from ..declared.admission import admit
from ..errors import DatabaseError, ReconcileError
from .subjects import Subject, subject_of

DEFAULT_PUBLIC_COMMENT = "standard public schema"  # what every new database's public schema says
# The column options PostgreSQL defines (ALTER TABLE ... ALTER COLUMN ... SET (...)).
COLUMN_OPTIONS = frozenset({"n_distinct", "n_distinct_inherited"})


@dataclasses.dataclass(frozen=True)
class DumpedStatement:
    text: str  # as pg_dump wrote it, without the ';'
    node_type: str  # pglast's name for it, e.g. "CreateStmt"
    node: dict  # its parse tree, as pglast's JSON
    subject: Subject  # what it is about (subjects.py)


@dataclasses.dataclass(frozen=True)
class Definitions:
    statements: tuple[DumpedStatement, ...]
    extensions: tuple[str, ...]  # CREATE EXTENSION statements left out, by extension name
    notes: tuple[str, ...]  # what was left out that the user may want to know about


def parse(sql: str) -> list[DumpedStatement]:
    """Every statement of `sql`, in order."""
    try:
        slices = pg_parser.split(sql, with_parser=True, only_slices=True)
        trees = json.loads(pg_parser.parse_sql_json(sql)).get("stmts", []) if slices else []
    except pg_parser.ParseError as exc:
        raise DatabaseError(f"cannot read pg_dump's output: {exc.args[0]} (is pg_dump newer than pglast's "
                            f"parser knows?)") from exc
    statements = []
    for piece, tree in zip(slices, trees, strict=True):
        [(node_type, node)] = tree["stmt"].items()
        statements.append(DumpedStatement(sql[piece], node_type, node, subject_of(node_type, node)))
    return statements


def definitions(dump: str) -> Definitions:
    """The definitions of pg_dump's text (psql's backslash lines already removed)."""
    kept, extensions, notes = [], [], []
    unknown_options: set[str] = set()
    default_privileges = 0
    public_seen = public_comment_seen = False
    for statement in parse(dump):
        node_type, node = statement.node_type, statement.node
        if node_type == "CreateExtensionStmt":
            extensions.append(node["extname"])
            continue
        if node_type == "CommentStmt" and node.get("objtype") == "OBJECT_SCHEMA" \
                and node["object"]["String"]["sval"] == "public":
            public_comment_seen = True
            if node.get("comment") == DEFAULT_PUBLIC_COMMENT:
                continue
        if node_type == "CreateSchemaStmt" and node.get("schemaname") == "public":
            public_seen = True
            continue
        if _setting_or_ownership(node_type, node):
            continue
        if node_type == "AlterDefaultPrivilegesStmt":
            default_privileges += 1
            continue
        options = _column_options(node_type, node)
        if options and not options & COLUMN_OPTIONS:
            unknown_options |= options
            continue
        try:
            admit(statement.text, "pg_dump")
        except ReconcileError as refused:
            notes.append(f"left out {_first_line(statement.text)!r}: {str(refused).split(': ', 1)[-1]}")
            continue
        kept.append(statement)
    if public_seen and not public_comment_seen:
        # The public schema has no comment on the target, but a new (scratch) database's says
        # 'standard public schema': declare that it has none.
        kept[:0] = parse("COMMENT ON SCHEMA public IS NULL")
    if unknown_options:
        notes.append(f"left out column options PostgreSQL does not define ({', '.join(sorted(unknown_options))}): "
                     f"the server's own bookkeeping, not compared by reconcile")
    if default_privileges:
        notes.append(f"left out {default_privileges} ALTER DEFAULT PRIVILEGES: a role's defaults, not the schema's; "
                     f"scratch databases take the deploy role's from the target")
    return Definitions(tuple(kept), tuple(sorted(set(extensions))), tuple(notes))


def _setting_or_ownership(node_type: str, node: dict) -> bool:
    """pg_dump's session settings, owners, and comments on extensions (which are not declared)."""
    if node_type in ("VariableSetStmt", "AlterOwnerStmt"):
        return True
    if node_type == "SelectStmt":  # SELECT pg_catalog.set_config('search_path', '', false)
        calls = [t["ResTarget"]["val"].get("FuncCall", {}) for t in node.get("targetList", ())]
        return bool(calls) and all(c.get("funcname") and c["funcname"][-1]["String"]["sval"] == "set_config"
                                   for c in calls)
    if node_type == "CommentStmt":
        return node.get("objtype") == "OBJECT_EXTENSION"
    if node_type == "AlterTableStmt":
        commands = [c.get("AlterTableCmd", {}).get("subtype") for c in node.get("cmds", ())]
        return bool(commands) and all(c == "AT_ChangeOwner" for c in commands)
    return False


def _column_options(node_type: str, node: dict) -> set[str]:
    """The option names of ALTER TABLE ... ALTER COLUMN ... SET (...), when that is all it does."""
    if node_type != "AlterTableStmt":
        return set()
    commands = [c.get("AlterTableCmd", {}) for c in node.get("cmds", ())]
    if not commands or any(c.get("subtype") != "AT_SetOptions" for c in commands):
        return set()
    return {element["DefElem"]["defname"] for c in commands for element in c["def"]["List"]["items"]}


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0]
    return line if len(line) <= 80 else line[:77] + "..."
