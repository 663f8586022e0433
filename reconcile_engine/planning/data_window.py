"""Stage 5b: where hand-written data steps go in a plan. They never run inside the DDL's transaction
(whose ACCESS EXCLUSIVE locks would hold the application for as long as a backfill takes): each is an
online step of its own, in batches (runner.run_in_batches). The plan is ordered

    data steps before the schema changes (--data-before)
    the DDL they may need: everything that adds, in one short transaction
    data steps after the schema changes (--data-after)
    the rest: what removes data (a dropped column a step may still read) and what needs the steps'
    rows (NOT NULL on a column they fill), in a second transaction and online steps

so that `ADD COLUMN "skillBand" text NOT NULL` with a backfill step becomes: add the column (nullable),
backfill in batches, then SET NOT NULL (which online.py validates through a CHECK without blocking).
"""

from __future__ import annotations

import dataclasses

from pglast import ast, enums, parse_sql
from pglast.stream import RawStream

from ..diff.operations import Operation, SchemaDiff
from ..diff.statement_facts import operation, qualified
from ..inspection.snapshot import CatalogSnapshot
from ..sqltext import quote_ident
from .hazards import classify

ORIGIN = "window.not-null-after-data"  # the SET NOT NULL moved after the data steps


def around_data_steps(changes: SchemaDiff, before: list[Operation], after: list[Operation],
                      current: CatalogSnapshot) -> SchemaDiff:
    """The plan's operations with the data steps placed as the module says."""
    if not before and not after:
        return changes
    first, rest = [], []
    existing = current.fact("relkind")
    for op in changes.statements:
        facts = op.facts
        table = qualified(facts.relation)
        if after and classify(op.sql, facts, current).destructive:
            rest.append(op)
        elif after and facts.node == "AlterTableStmt" and any(a.subtype == "AT_SetNotNull" for a in facts.actions):
            rest.append(op)
        elif after and table in existing and _adds_required_column(op):
            nullable, columns = _nullable(op.sql)
            first.append(operation(nullable, op.origin))
            schema, _, name = table.partition(".")
            rest += [operation(f"ALTER TABLE {quote_ident(schema)}.{quote_ident(name)} ALTER COLUMN "
                               f"{quote_ident(column)} SET NOT NULL;", ORIGIN) for column in columns]
        else:
            first.append(op)
    return dataclasses.replace(changes, statements=tuple(before) + tuple(first) + tuple(after) + tuple(rest))


def _adds_required_column(op: Operation) -> bool:
    """ADD COLUMN ... NOT NULL without a default: it fails on a table with rows unless a step fills it."""
    actions = op.facts.actions
    return bool(actions) and all(a.subtype == "AT_AddColumn" for a in actions) and any(
        a.not_null and not a.has_default for a in actions)


def _nullable(sql: str) -> tuple[str, list[str]]:
    """The ALTER TABLE ... ADD COLUMN without its NOT NULLs (rendered from pglast's tree of this one
    statement), and the columns they were on."""
    statement = parse_sql(sql)[0].stmt
    columns = []
    for command in statement.cmds:
        column = command.def_
        if not isinstance(column, ast.ColumnDef) or not column.constraints:
            continue
        kept = tuple(c for c in column.constraints if c.contype != enums.ConstrType.CONSTR_NOTNULL)
        if len(kept) != len(column.constraints):
            columns.append(column.colname)
            column.constraints = kept or None
    return RawStream()(statement) + ";", columns
