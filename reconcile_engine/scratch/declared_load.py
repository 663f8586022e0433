"""Stage 3, building the declared state: one declared file's admitted statements run in a scratch
database, inert (inert.py), each error named by the file and line it comes from."""

from __future__ import annotations

import psycopg2

from ..connections import first_line
from ..declared.admission import line_at
from ..declared.files import SqlSource
from ..errors import DeclaredStateError
from ..runner import execute_batched
from .inert import InertFunctions


def check_partition_spec(cur, spec) -> None:
    """A spec must name a range-partitioned table declared in schema/, by its single key column."""
    cur.execute(
        """SELECT pt.partstrat::text, pg_get_partkeydef(c.oid),
                  (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(pt.partattrs) WITH ORDINALITY k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
           WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')""",
        (spec.schema, spec.table),
    )
    row = cur.fetchone()
    where = f"{spec.display}: "
    if row is None:
        raise DeclaredStateError(f"{where}table: {spec.schema}.{spec.table} is not declared in schema/")
    strategy, keydef, columns = row
    if strategy is None:
        raise DeclaredStateError(f"{where}table: {spec.schema}.{spec.table} is not partitioned "
                                 f"(declare it with PARTITION BY RANGE ({spec.column}))")
    if strategy != "r" or columns != [spec.column]:
        raise DeclaredStateError(f"{where}column: {spec.column} is not the range partition key of "
                                 f"{spec.schema}.{spec.table}, which is partitioned by {keydef}")


def load_source(cur, source: SqlSource, inert: InertFunctions) -> None:
    """Run a declared file's admitted statements, each in its inert form (inert.py); an error names
    the file and the line of the statement, or of the position PostgreSQL points at in it."""
    if source.spec is not None:
        check_partition_spec(cur, source.spec)
    runs = []  # (statement, text, whether positions in the text are those of the statement)
    for statement in source.statements:
        for number, text in enumerate(inert.texts(statement.text, statement.node_type)):
            runs.append((statement, text, number == 0))

    def run_one(index: int) -> None:
        statement, text, as_written = runs[index]
        try:
            cur.execute(text)
        except psycopg2.Error as exc:
            position = getattr(exc.diag, "statement_position", None) if as_written else None
            offset = statement.start + (int(position) - 1 if position else 0)
            message = (exc.diag.message_primary or first_line(exc)).strip()
            raise DeclaredStateError(f"{source.label}:{line_at(source.sql, offset)}: {message}") from exc

    execute_batched(cur, [text for _, text, _ in runs], run_one, savepoints=False)

