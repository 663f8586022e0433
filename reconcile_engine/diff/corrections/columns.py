"""Corrections for columns: a generated column's expression, defaults that call new functions, and the
USING expression a type change was declared with."""

from __future__ import annotations

import dataclasses

from pglast import parse_sql
from pglast.stream import RawStream

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


# This object kind's corrections, in the order they run.
CORRECTIONS = (GeneratedColumns(), DefaultsAfterFunctions(), DeclaredUsing())
