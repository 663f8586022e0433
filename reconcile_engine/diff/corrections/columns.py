"""Corrections for columns: a generated column's expression, and defaults that call new functions."""

from __future__ import annotations

import dataclasses

from pglast import ast
from pglast.enums import AlterTableType
from pglast.visitors import Visitor

from ...sqltext import quote_ident
from ..operations import DiffStatement
from .base import DiffContext, Correction, InspectedDatabase, dotted, parsed

SET_EXPRESSION_SINCE = 17  # ALTER COLUMN ... SET EXPRESSION


class GeneratedColumns(Correction):
    name = "columns.generated"
    fixes = ("migra 'alters the default' of a generated column whose expression changed, which PostgreSQL "
             "refuses: SET EXPRESSION on 17+, else drop and re-add the (derived) column")

    def rewrite(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        generated = desired.snapshot.fact("generated column")
        names = desired.snapshot.fact("qualified name")
        major = desired.inspected.pg_version
        out = []
        for statement in statements:
            nodes = parsed(statement.sql, "AT_ColumnDefault")
            node = nodes[0].stmt if len(nodes) == 1 else None
            cmd = node.cmds[0] if isinstance(node, ast.AlterTableStmt) and len(node.cmds) == 1 else None
            column = None
            if cmd is not None and cmd.subtype == AlterTableType.AT_ColumnDefault:
                table = dotted(node.relation.schemaname or "public", node.relation.relname)
                column = dotted(table, cmd.name)
            if column not in generated:
                out.append(statement)
                continue
            table_name, name = names[table], quote_ident(cmd.name)
            expression = generated[column]["expression"]
            definition = f"{generated[column]['type']} GENERATED ALWAYS AS ({expression}) STORED"
            if major >= SET_EXPRESSION_SINCE:
                sqls = [f"alter table {table_name} alter column {name} set expression as {expression};"]
            else:
                # The column's values are derived, so dropping and re-adding it loses nothing.
                sqls = [f"alter table {table_name} drop column {name};",
                        f"alter table {table_name} add column {name} {definition};"]
            out += [dataclasses.replace(statement, sql=sql, origin=self.name) for sql in sqls]
        return out


class _FunctionCalls(Visitor):
    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def visit_FuncCall(self, ancestors, node):
        self.names.add(node.funcname[-1].sval)


def _created_function(statement) -> str | None:
    nodes = parsed(statement.sql, "CreateFunctionStmt")
    if len(nodes) == 1 and isinstance(nodes[0].stmt, ast.CreateFunctionStmt):
        return nodes[0].stmt.funcname[-1].sval
    return None


def _called_functions(statement) -> set[str]:
    calls = _FunctionCalls()
    for raw in parsed(statement.sql, "FuncCall"):
        if isinstance(raw.stmt, (ast.AlterTableStmt, ast.CreateStmt)):
            calls(raw.stmt)
    return calls.names


class DefaultsAfterFunctions(Correction):
    name = "columns.defaults-after-functions"
    fixes = "migra creates functions after tables, so a default calling a function new in the plan fails"

    def rewrite(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        statements = list(statements)
        creates = {}  # function name -> the statement creating it (read once: plans can be long)
        for statement in statements:
            name = _created_function(statement)
            if name is not None:
                creates.setdefault(name, statement)
        if not creates:
            return statements
        for position, statement in enumerate(statements):
            needed = _called_functions(statement) & set(creates)
            later = [creates[n] for n in sorted(needed) if statements.index(creates[n]) > position]
            if not later:
                continue
            # Move those creations just before their first use. Bodies are not checked at creation
            # (migra turns check_function_bodies off), so they need nothing created after them.
            rest = [s for s in statements if s not in later]
            index = rest.index(statement)
            moved = [DiffStatement("set check_function_bodies = off;", self.name)] + [
                dataclasses.replace(s, origin=self.name) for s in later]
            return self.rewrite(rest[:index] + moved + rest[index:], current, desired, context)
        return statements


# This object kind's corrections, in the order they run.
CORRECTIONS = (GeneratedColumns(), DefaultsAfterFunctions())
