"""Corrections for columns: a generated column's expression, defaults that call new functions, the
USING expression a type change was declared with, and the collations of a new table's columns."""

from __future__ import annotations

import dataclasses

from pglast import ast, parse_sql
from pglast.stream import RawStream

from ...inspection.migra_view import key_of
from ...sqltext import quote_ident
from ..statement_facts import operation, qualified
from .base import Correction, DiffContext, InspectedDatabase, dotted, only_action

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
            facts = statement.facts
            action = only_action(facts)
            column = None
            if action is not None and action.subtype == "AT_ColumnDefault":
                table = qualified(facts.relation)
                column = dotted(table, action.name)
            if column not in generated:
                out.append(statement)
                continue
            table_name, name = names[table], quote_ident(action.name)
            expression = generated[column]["expression"]
            definition = f"{generated[column]['type']} GENERATED ALWAYS AS ({expression}) STORED"
            if major >= SET_EXPRESSION_SINCE:
                sqls = [f"alter table {table_name} alter column {name} set expression as {expression};"]
            else:
                # The column's values are derived, so dropping and re-adding it loses nothing.
                sqls = [f"alter table {table_name} drop column {name};",
                        f"alter table {table_name} add column {name} {definition};"]
            out += [operation(sql, self.name) for sql in sqls]
        return out


class DefaultsAfterFunctions(Correction):
    name = "columns.defaults-after-functions"
    fixes = "migra creates functions after tables, so a default calling a function new in the plan fails"

    def rewrite(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        statements = list(statements)
        creates = {}  # function name -> the statement creating it
        for statement in statements:
            name = statement.facts.function_created
            if name is not None:
                creates.setdefault(name, statement)
        if not creates:
            return statements
        for position, statement in enumerate(statements):
            needed = statement.facts.functions_called & set(creates)
            later = [creates[n] for n in sorted(needed) if statements.index(creates[n]) > position]
            if not later:
                continue
            # Move those creations just before their first use. Bodies are not checked at creation
            # (migra turns check_function_bodies off), so they need nothing created after them.
            rest = [s for s in statements if s not in later]
            index = rest.index(statement)
            moved = [operation("set check_function_bodies = off;", self.name)] + [
                dataclasses.replace(s, origin=self.name) for s in later]
            return self.rewrite(rest[:index] + moved + rest[index:], current, desired, context)
        return statements


class DeclaredUsing(Correction):
    name = "columns.using"
    fixes = ("migra converts a column to its new type with a plain cast (USING col::type), which fails for "
             "bigint -> timestamptz and the like; the declared '-- reconcile: using <expression>' is used")

    def rewrite(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        usings = {(using.table, using.column): using.expression for using in context.usings}
        if not usings:
            return statements
        out = []
        for statement in statements:
            facts = statement.facts
            action = only_action(facts)
            expression = usings.get((qualified(facts.relation), action.name)) \
                if action is not None and action.subtype == "AT_AlterColumnType" else None
            if expression is None:
                out.append(statement)
                continue
            node = parse_sql(statement.sql)[0].stmt
            node.cmds[0].def_.raw_default = parse_sql(f"SELECT {expression}")[0].stmt.targetList[0].val
            out.append(operation(RawStream()(node) + ";", self.name))
        return out


class CollationsOnCreate(Correction):
    name = "columns.collation-on-create"
    fixes = ("migra writes a new table's columns without their COLLATE clause (only ADD COLUMN has it), so "
             "a column declared COLLATE \"POSIX\" (or any other) is created with its type's default")

    def rewrite(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        out, changed = [], False
        for statement in statements:
            facts = statement.facts
            table = desired.inspected.tables.get(key_of(qualified(facts.relation))) \
                if facts.node == "CreateStmt" and not facts.partition_of else None
            collations = {name: c.collation for name, c in table.columns.items() if c.collation} if table else {}
            if not collations:
                out.append(statement)
                continue
            node = parse_sql(statement.sql)[0].stmt
            for element in node.tableElts or ():
                if isinstance(element, ast.ColumnDef) and element.colname in collations and element.collClause is None:
                    element.collClause = ast.CollateClause(collname=(ast.String(collations[element.colname]),))
            out.append(operation(RawStream()(node) + ";", self.name))
            changed = True
        return out if changed else statements


class StorageSettings(Correction):
    name = "columns.settings"
    fixes = ("migra ignores a column's storage, compression, statistics target and options "
             "(ALTER COLUMN ... SET STORAGE / COMPRESSION / STATISTICS / (n_distinct = ...))")

    def after_migra(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> list[str]:
        before, after = current.snapshot.fact("column settings"), desired.snapshot.fact("column settings")
        parents = desired.snapshot.fact("partition parent")
        names = desired.snapshot.fact("qualified name")
        columns = desired.snapshot.of_kind("column")
        out = []
        for column in sorted(set(before) | set(after)):
            table, name = column.rsplit(".", 1)
            if column not in columns or table in parents:  # gone, or a partition's (its parent's recurse)
                continue
            had, wanted = before.get(column) or {}, after.get(column) or {}
            if had == wanted:
                continue
            relation = "materialized view" if (wanted or had).get("relkind") == "m" else "table"
            alter = f"alter {relation} {names[table]} alter column {quote_ident(name)}"
            if had.get("storage") != wanted.get("storage"):
                # Back to its type's own (SET STORAGE DEFAULT is PostgreSQL 16+), read on either side.
                default = wanted.get("type storage") or had.get("type storage")
                out.append(f"{alter} set storage {wanted.get('storage') or default};")
            if had.get("compression") != wanted.get("compression"):
                out.append(f"{alter} set compression {wanted.get('compression') or 'default'};")
            if had.get("statistics") != wanted.get("statistics"):
                out.append(f"{alter} set statistics {wanted.get('statistics') if wanted.get('statistics') is not None else -1};")
            old, new = _options(had.get("options")), _options(wanted.get("options"))
            if {k: v for k, v in new.items() if old.get(k) != v}:
                out.append(f"{alter} set ({', '.join(f'{k}={v}' for k, v in sorted(new.items()))});")
            if set(old) - set(new):
                out.append(f"{alter} reset ({', '.join(sorted(set(old) - set(new)))});")
        return out


def _options(items) -> dict:
    return dict(item.split("=", 1) for item in items or ())


# This object kind's corrections, in the order they run.
CORRECTIONS = (GeneratedColumns(), DefaultsAfterFunctions(), DeclaredUsing(), CollationsOnCreate(), StorageSettings())
