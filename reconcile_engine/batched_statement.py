"""Stage 8 helper (pure): one statement cut into batches by a primary-key range. A data step
(`UPDATE t SET ... WHERE ...`, `DELETE FROM t WHERE ...`) or the copy of a table being converted
(`INSERT INTO new SELECT ... FROM old ...`) runs as many statements, each adding
`(alias.k1, alias.k2) > (low) AND (alias.k1, alias.k2) <= (high)` to its WHERE clause, so each batch
touches at most `batch_rows` rows of the table in its own short transaction. The runner reads the key
and the range bounds on the target and executes; this module only rewrites the parse tree (pglast),
never the text.
"""

from __future__ import annotations

import dataclasses

from pglast import ast, enums, parse_sql
from pglast.stream import RawStream

from .sqltext import quote_part


class NotBatchable(Exception):
    """Why a statement runs as a whole (in its own transaction) rather than in batches."""


@dataclasses.dataclass(frozen=True)
class BatchShape:
    """Where a statement's key-range condition goes: the table it reads or writes, and the name its
    rows go by in the statement (its alias, else its own name)."""

    table: str  # as written, quoted: what to_regclass reads
    row_name: str  # quoted: alias or relation name, to qualify the key columns


def shape_of(sql: str) -> BatchShape:
    """The batch shape of a statement, or NotBatchable with the reason."""
    statement, holder, relation = _parts(sql)
    name = quote_part(relation.relname)
    table = f"{quote_part(relation.schemaname)}.{name}" if relation.schemaname else name
    return BatchShape(table, quote_part(relation.alias.aliasname) if relation.alias else name)


def _parts(sql: str):
    statements = parse_sql(sql)
    if len(statements) != 1:
        raise NotBatchable("it is several statements")
    statement = statements[0].stmt
    if isinstance(statement, (ast.UpdateStmt, ast.DeleteStmt)):
        if statement.withClause or statement.returningClause:
            raise NotBatchable("it has a WITH or RETURNING clause")
        return statement, statement, statement.relation
    if isinstance(statement, ast.InsertStmt):
        select = statement.selectStmt
        if (statement.withClause or statement.returningClause or not isinstance(select, ast.SelectStmt)
                or select.withClause or select.limitCount or select.groupClause or select.distinctClause
                or select.op != enums.SetOperation.SETOP_NONE or not select.fromClause
                or len(select.fromClause) != 1 or not isinstance(select.fromClause[0], ast.RangeVar)):
            raise NotBatchable("only INSERT ... SELECT from one table, without WITH, GROUP BY, DISTINCT or "
                               "LIMIT, is cut into batches")
        return statement, select, select.fromClause[0]
    raise NotBatchable("only UPDATE, DELETE and INSERT ... SELECT are cut into batches")


def key_range_sql(sql: str, shape: BatchShape, keys: list[str], low: str | None, high: str | None) -> str:
    """The statement limited to rows whose key is after `low` and up to `high` (each a row literal
    already quoted, such as "('a'::text, '2020-01-01'::date)"; None: unbounded on that side)."""
    statement, holder, _ = _parts(sql)
    row = "(" + ", ".join(f"{shape.row_name}.{quote_part(k)}" for k in keys) + ")"
    if len(keys) == 1:
        row = f"{shape.row_name}.{quote_part(keys[0])}"
    conditions = [f"{row} > {low}" if low else None, f"{row} <= {high}" if high else None]
    text = " AND ".join(c for c in conditions if c)
    if not text:
        return sql
    condition = parse_sql(f"SELECT WHERE {text}")[0].stmt.whereClause
    if holder.whereClause is not None:
        condition = ast.BoolExpr(boolop=enums.BoolExprType.AND_EXPR, args=(holder.whereClause, condition))
    holder.whereClause = condition
    return RawStream()(statement)
