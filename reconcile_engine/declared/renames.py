"""Stage 1c: directives in declared files. Renames, for the plan to ALTER ... RENAME instead of
dropping the old object (and its data) and creating the new one; and how a column's values are
converted when its type changes (ColumnUsing: the expression of ALTER ... TYPE ... USING).

A directive is a comment right before what it renames:

    -- reconcile: renamed from people
    CREATE TABLE users (
        -- reconcile: renamed from mail
        email text NOT NULL,
        ...

before a CREATE TABLE, VIEW, MATERIALIZED VIEW, INDEX or POLICY (the object itself), or before a
column or a constraint inside a CREATE TABLE; and, before a column,

        -- reconcile: using to_timestamp(happened)
        happened timestamptz NOT NULL,

Comments, names and the expression are read with PostgreSQL's own scanner and parser (pglast),
never by pattern over the statement; the expression is written back from its parse tree, so it is
one expression and nothing else.
"""

from __future__ import annotations

import dataclasses
import json


from ..errors import DeclaredStateError
from ..sqltext import quote_ident
from .admission import line_at

DIRECTIVE = "reconcile: renamed from"
USING = "reconcile: using"
_COMMENTS = ("SQL_COMMENT", "C_COMMENT")
# Statement node -> the kind of object it declares (and a directive before it renames).
_OBJECTS = {
    "CreateStmt": "table",
    "ViewStmt": "view",
    "CreateTableAsStmt": "materialized view",
    "IndexStmt": "index",
    "CreatePolicyStmt": "policy",
}
_ALTER = {"table": "TABLE", "view": "VIEW", "materialized view": "MATERIALIZED VIEW", "index": "INDEX"}


@dataclasses.dataclass(frozen=True)
class Rename:
    """One declared rename: `old` becomes `new` (both schema.name for a relation; bare names for a
    column, constraint or policy, which belong to `table`)."""

    kind: str  # table, view, materialized view, index, column, constraint, policy
    old: str
    new: str
    where: str  # file:line of the directive
    table: str | None = None  # schema.name of the (declared) table of a column, constraint or policy

    def statement(self) -> str:
        if self.kind in _ALTER:
            schema, _, old = self.old.partition(".")
            return (f"ALTER {_ALTER[self.kind]} {quote_ident(schema)}.{quote_ident(old)} "
                    f"RENAME TO {quote_ident(self.new.partition('.')[2])}")
        schema, _, table = self.table.partition(".")
        on = f"{quote_ident(schema)}.{quote_ident(table)}"
        if self.kind == "policy":
            return f"ALTER POLICY {quote_ident(self.old)} ON {on} RENAME TO {quote_ident(self.new)}"
        word = "COLUMN" if self.kind == "column" else "CONSTRAINT"
        return f"ALTER TABLE {on} RENAME {word} {quote_ident(self.old)} TO {quote_ident(self.new)}"


@dataclasses.dataclass(frozen=True)
class ColumnUsing:
    """How a declared column's values are converted when the plan changes its type."""

    table: str  # schema.name
    column: str
    expression: str  # written back from its parse tree
    where: str  # file:line of the directive


def renames_in(sql: str, label: str) -> tuple[Rename, ...]:
    """The rename directives of a declared file (or its rendering), each tied to what follows it."""
    return tuple(_tie(text, offset, statements, where) for text, offset, statements, where in _found(sql, label, DIRECTIVE))


def usings_in(sql: str, label: str) -> tuple[ColumnUsing, ...]:
    """The `using` directives of a declared file, each tied to the column that follows it."""
    found = []
    for text, offset, statements, where in _found(sql, label, USING):
        column = _column_at(offset, statements)
        if column is None:
            raise DeclaredStateError(f"{where}: '{USING}' must come right before a column in a CREATE TABLE")
        found.append(ColumnUsing(column[0], column[1], _expression(text, where), where))
    return tuple(found)


def _found(sql: str, label: str, prefix: str):
    """(directive text after `prefix`, where what follows it starts, the file's statements, file:line)."""
    if prefix not in sql:  # a directive is a comment that holds it: most files have none to scan for
        return
    from pglast import parser as pg_parser  # only a file that may hold a directive loads it

    tokens = [t for t in pg_parser.scan(sql)]
    directives = [(i, t) for i, t in enumerate(tokens) if t.name in _COMMENTS and _directive(sql, t, prefix) is not None]
    if not directives:
        return
    statements = json.loads(pg_parser.parse_sql_json(sql)).get("stmts", [])
    starts = [t.start for t in tokens if t.name not in _COMMENTS]
    for entry in statements:  # where each statement's own text begins, after the comments before it
        entry["first_token"] = next((start for start in starts if start >= entry.get("stmt_location", 0)), None)
    for index, token in directives:
        where = f"{label}:{line_at(sql, token.start)}"
        following = next((t for t in tokens[index + 1:] if t.name not in _COMMENTS), None)
        if following is None:
            what = "what it renames" if prefix == DIRECTIVE else "the column it applies to"
            raise DeclaredStateError(f"{where}: '{prefix}' must come right before {what}")
        yield _directive(sql, token, prefix), following.start, statements, where


def _directive(sql: str, token, prefix: str) -> str | None:
    text = sql[token.start:token.end + 1].strip()
    text = text[2:] if text.startswith("--") else text[2:-2]
    text = text.strip()
    if not text.startswith(prefix):
        return None
    return text[len(prefix):].strip()


def _column_at(offset: int, statements: list) -> tuple[str, str] | None:
    """(table, column) of the column definition starting at `offset` in a CREATE TABLE."""
    for entry in statements:
        [(node_type, node)] = entry["stmt"].items()
        if node_type != "CreateStmt":
            continue
        for element in node.get("tableElts") or ():
            inner = element.get("ColumnDef")
            if inner is not None and inner.get("location") == offset:
                return _relation(node["relation"]), inner["colname"]
    return None


def _expression(text: str, where: str) -> str:
    """One SQL expression, as its parse tree prints it (a second statement or clause is refused)."""
    from pglast import ast, parse_sql
    from pglast import parser as pg_parser
    from pglast.stream import RawStream

    try:
        statements = parse_sql(f"SELECT {text}")
    except pg_parser.ParseError as exc:
        raise DeclaredStateError(f"{where}: using {text!r}: {exc.args[0]}") from None
    select = statements[0].stmt if len(statements) == 1 else None
    if (not isinstance(select, ast.SelectStmt) or len(select.targetList or ()) != 1 or select.targetList[0].name
            or select.fromClause or select.whereClause or select.groupClause or select.havingClause
            or select.sortClause or select.limitCount or select.lockingClause or select.withClause):
        raise DeclaredStateError(f"{where}: using {text!r}: expected one expression, such as "
                                 f"to_timestamp(happened) or amount::numeric(12, 2)")
    return RawStream()(select.targetList[0].val)


def _tie(old_text: str, offset: int, statements: list, where: str) -> Rename:
    """The Rename for a directive whose next token starts at `offset`."""
    for entry in statements:
        start = entry.get("stmt_location", 0)
        if not start <= offset < start + entry.get("stmt_len", 1 << 62):
            continue
        [(node_type, node)] = entry["stmt"].items()
        if node_type == "CreateStmt":
            for element in node.get("tableElts") or ():
                [(element_type, inner)] = element.items()
                if inner.get("location") == offset and element_type in ("ColumnDef", "Constraint"):
                    name = inner.get("colname") or inner.get("conname")
                    if not name:
                        raise DeclaredStateError(f"{where}: a renamed constraint needs a name (CONSTRAINT name ...)")
                    kind = "column" if element_type == "ColumnDef" else "constraint"
                    return Rename(kind, _bare(old_text, where), name, where, _relation(node["relation"]))
        if node_type not in _OBJECTS or entry["first_token"] != offset:
            break
        return _object_rename(_OBJECTS[node_type], node, old_text, where)
    raise DeclaredStateError(
        f"{where}: '{DIRECTIVE}' must come right before a CREATE TABLE, VIEW, MATERIALIZED VIEW, INDEX or "
        f"POLICY, or before a column or named constraint in a CREATE TABLE"
    )


def _object_rename(kind: str, node: dict, old_text: str, where: str) -> Rename:
    if kind == "policy":
        return Rename(kind, _bare(old_text, where), node["policy_name"], where, _relation(node["table"]))
    if kind == "index":
        table = _relation(node["relation"])
        new = f"{table.partition('.')[0]}.{node['idxname']}"
    elif kind == "view":
        new = _relation(node["view"])
    elif kind == "materialized view":
        new = _relation(node["into"]["rel"])
    else:
        new = _relation(node["relation"])
    schema = new.partition(".")[0]
    old = _qualified_name(old_text, where)
    old = old if "." in old else f"{schema}.{old}"
    if old.partition(".")[0] != schema:
        raise DeclaredStateError(f"{where}: renamed from {old_text}: a rename stays in its schema "
                                 f"({schema}); moving an object to another schema is not a rename")
    return Rename(kind, old, new, where)


def _relation(range_var: dict) -> str:
    return f"{range_var.get('schemaname') or 'public'}.{range_var['relname']}"


def _qualified_name(text: str, where: str) -> str:
    """An old name as written (quoted or not, optionally schema-qualified), read by the parser."""
    from pglast import parser as pg_parser

    try:
        [entry] = json.loads(pg_parser.parse_sql_json(f"SELECT 1 FROM {text}"))["stmts"]
        [item] = entry["stmt"]["SelectStmt"]["fromClause"]
        range_var = item["RangeVar"]
    except (pg_parser.ParseError, KeyError, ValueError, TypeError):
        raise DeclaredStateError(f"{where}: renamed from {text!r}: expected a name such as people or "
                                 f"public.people") from None
    if range_var.get("catalogname") or range_var.get("alias"):
        raise DeclaredStateError(f"{where}: renamed from {text!r}: expected a name such as people or public.people")
    return f"{range_var['schemaname']}.{range_var['relname']}" if range_var.get("schemaname") else range_var["relname"]


def _bare(text: str, where: str) -> str:
    name = _qualified_name(text, where)
    if "." in name:
        raise DeclaredStateError(f"{where}: renamed from {text!r}: a column, constraint or policy is renamed "
                                 f"within its table: give its old name alone")
    return name
