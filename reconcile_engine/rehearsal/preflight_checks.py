"""Stage 6b: pre-flight checks on the target, while the plan is rehearsed on its schema-only copy.

For the statements that can fail on rows the target holds (planning/preflight.py), read the tables
and the catalog, then count what would fail, all in ONE read-only transaction (SET TRANSACTION READ
ONLY; row_security off, so a policy never hides rows: PostgreSQL refuses instead, and the check says
so), each query under timeouts.statement_timeout and lock_timeout, behind a savepoint so that one
that is cancelled or refused leaves the others running. Nothing is written; the transaction is
rolled back. A query that takes too long is reported "not checked", never dropped.
"""

from __future__ import annotations

import dataclasses

import psycopg2
import psycopg2.errors

from ..config import Config
from ..connections import connected, first_line, server_major
from ..diff.statement_facts import qualified
from ..errors import DatabaseError
from ..inspection.snapshot import CatalogSnapshot
from ..planning import preflight
from ..planning.build import Plan
from ..planning.expression_catalog import Cast, Catalog, Column, Routine
from ..planning.preflight import outcome
from ..planning.preflight_queries import Query, label, queries
from ..sqltext import quote_ident

_TABLE = """
    SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(%s) AND c.relkind IN ('r', 'p')"""
_COLUMNS = """
    SELECT a.attname, b.oid, pg_catalog.format_type(a.atttypid, a.atttypmod),
           (b.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND b.typtype IN ('b', 'r', 'm')) OR b.typtype = 'e'
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    JOIN pg_catalog.pg_type b ON b.oid = COALESCE(NULLIF(t.typbasetype, 0), t.oid)
    WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped"""
_PARTITIONING = """
    SELECT p.partstrat, 0 = ANY (p.partattrs::pg_catalog.int2[]),
           ARRAY(SELECT a.attname FROM pg_catalog.unnest(p.partattrs::pg_catalog.int2[]) WITH ORDINALITY k(n, i)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.n ORDER BY k.i),
           dn.nspname || '.' || dc.relname
    FROM pg_catalog.pg_partitioned_table p LEFT JOIN pg_catalog.pg_class dc ON dc.oid = p.partdefid
    LEFT JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace WHERE p.partrelid = %s"""
_FUNCTIONS = """
    SELECT p.proname, p.proargtypes::pg_catalog.oid[], p.prorettype, p.provolatile = 'i', p.prokind, p.proretset,
           p.provariadic, p.pronargdefaults
    FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND p.proname = ANY (%s)"""
_OPERATORS = """
    SELECT o.oprname, o.oprleft, o.oprright, o.oprresult, f.provolatile = 'i'
    FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc f ON f.oid = o.oprcode
    WHERE o.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace AND o.oprname = ANY (%s)"""
_CASTS = """
    SELECT c.castsource, c.casttarget, c.castcontext = 'i',
           c.castfunc = 0 OR (f.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND f.provolatile = 'i')
    FROM pg_catalog.pg_cast c LEFT JOIN pg_catalog.pg_proc f ON f.oid = c.castfunc"""
_KINDS = """
    SELECT t.oid, t.typtype = 'p', t.typcategory FROM pg_catalog.pg_type t
    WHERE t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND (t.typtype = 'p' OR t.typcategory IN ('S', 'A'))"""
_TYPE = """
    SELECT t.oid, CASE WHEN t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND t.typtype IN ('b', 'r', 'm')
                       THEN 'builtin' WHEN t.typtype = 'e' THEN 'enum' ELSE 'other' END
    FROM pg_catalog.pg_type t WHERE t.oid = pg_catalog.to_regtype(%s)"""


def duration(ms: int) -> str:
    if ms % 60_000 == 0:
        return f"{ms // 60_000}min"
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


class _Transaction:
    """The check's read-only transaction: every statement behind a savepoint."""

    def __init__(self, cur, config: Config):
        self.cur = cur
        timeouts = config.timeouts
        self.limits = {psycopg2.errors.QueryCanceled: f"took longer than {duration(timeouts.statement_timeout_ms)} "
                                                       f"(timeouts.statement_timeout)",
                       psycopg2.errors.LockNotAvailable: f"waited longer than {duration(timeouts.lock_timeout_ms)} "
                                                          f"for a lock (timeouts.lock_timeout)"}

    def run(self, sql: str, params=None) -> tuple[list | None, psycopg2.Error | None, str | None]:
        """(rows, error, why it was stopped): rows when it ran, else PostgreSQL's error."""
        self.cur.execute("SAVEPOINT preflight")
        try:
            self.cur.execute(sql, params)
            rows = self.cur.fetchall()
        except psycopg2.Error as exc:
            self.cur.execute("ROLLBACK TO SAVEPOINT preflight")
            return None, exc, next((why for kind, why in self.limits.items() if isinstance(exc, kind)), None)
        self.cur.execute("RELEASE SAVEPOINT preflight")
        return rows, None, None

    def rows(self, sql: str, params=None) -> list:
        """A catalog query's rows (its failure is the caller's: the catalog is always readable)."""
        self.cur.execute(sql, params)
        return self.cur.fetchall()

    def describe(self, name: str) -> preflight.Table | None:
        """A table's columns and partitioning on the target (rows not counted yet); None: not there."""
        found = self.rows(_TABLE, (quote_ident(qualified(name)),))
        if not found:
            return None
        columns = {column: Column(kind, shown, allowed) for column, kind, shown, allowed in self.rows(_COLUMNS, found[0])}
        partitioning = self.rows(_PARTITIONING, found[0])
        if not partitioning:
            return preflight.Table(0, columns)
        strategy, by_expression, keys, default = partitioning[0]
        return preflight.Table(0, columns, None if by_expression else tuple(keys), strategy, default)

    def count(self, name: str, table: preflight.Table, rows: bool) -> preflight.Table | str:
        """The table with its rows counted (if `rows`) and its DEFAULT partition's; why not, when not."""
        for relation, field, wanted in ((name, "rows", rows), (table.default_partition, "default_rows", True)):
            if relation and wanted:
                counted, error, stopped = self.run(f"SELECT pg_catalog.count(*) FROM {quote_ident(qualified(relation))}")
                if counted is None:
                    return f"counting {relation}'s rows {stopped}" if stopped else \
                        f"PostgreSQL refused to count {relation}'s rows: {first_line(error)}"
                table = dataclasses.replace(table, **{field: counted[0][0]})
        return table

    def catalog(self, names: preflight.Names) -> Catalog:
        functions, operators = {}, {}
        for name, params, result, immutable, kind, returns_set, variadic, defaults in \
                self.rows(_FUNCTIONS, (sorted(names.functions),)):
            functions.setdefault(name, []).append(Routine(tuple(params), result, immutable, kind, returns_set,
                                                          variadic, defaults))
        for name, left, right, result, immutable in self.rows(_OPERATORS, (sorted(names.operators),)):
            operators.setdefault(name, []).append(Routine((left, right), result, immutable, "o"))
        kinds = self.rows(_KINDS)
        types = {}
        for text in sorted(names.types):
            found, _, _ = self.run(_TYPE, (text,))  # a malformed name is an error on older servers
            types[text] = tuple(found[0]) if found else None
        return Catalog({k: tuple(v) for k, v in functions.items()}, {k: tuple(v) for k, v in operators.items()},
                       tuple(Cast(*row) for row in self.rows(_CASTS)), types,
                       frozenset(oid for oid, pseudo, _ in kinds if pseudo),
                       frozenset(oid for oid, _, category in kinds if category == "S"),
                       frozenset(oid for oid, _, category in kinds if category == "A"))

    def check(self, query: Query) -> preflight.Outcome:
        if query.not_checked or query.sql is None:
            return outcome(query, query.failing, query.not_checked)
        rows, error, stopped = self.run(query.sql)
        if rows is not None:
            return outcome(query, 0 if query.errors_mean_failure else int(rows[0][0]))
        if stopped:
            return outcome(query, None, stopped)
        if query.errors_mean_failure and (error.pgcode or "").startswith("22"):  # class 22: data exception
            return outcome(query, None, cast_error=first_line(error))
        return outcome(query, None, f"PostgreSQL refused the check: {first_line(error)}")


def run_preflight(config: Config, target_url: str, plan: Plan, current: CatalogSnapshot) -> list[preflight.Outcome]:
    """The outcome of every pre-flight check of `plan` on the target (`current`: its snapshot)."""
    found = preflight.candidates(plan.statements, current)
    if not found:
        return []
    timeouts = config.timeouts
    with connected(target_url, timeouts.connect_timeout_s, autocommit=False) as conn, conn.cursor() as cur:
        try:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true), "
                        "pg_catalog.set_config('row_security', 'off', true), "
                        "pg_catalog.set_config('lock_timeout', %s, true)", (f"{timeouts.lock_timeout_ms}ms",))
            checks = _Transaction(cur, config)
            names = sorted({t for c in found for t in c.tables})
            described = {name: checks.describe(name) for name in names}  # the catalog only: quick
            catalog = checks.catalog(preflight.names_to_resolve(found))
            # From here on every statement reads rows: each is bounded by statement_timeout.
            cur.execute("SELECT pg_catalog.set_config('statement_timeout', %s, true)",
                        (f"{timeouts.statement_timeout_ms}ms",))
            counted = {c.table for c in found if c.kind != "default partition"}  # a parent: only its DEFAULT's
            tables = {name: table and checks.count(name, table, name in counted) for name, table in described.items()}
            outcomes = []
            for c in [c for c in found if any(isinstance(tables[t], str) for t in c.tables)]:
                why = next(tables[t] for t in c.tables if isinstance(tables[t], str))
                outcomes.append(outcome(Query(c.statement, c.summary, label(c), 0), None, why))
                found.remove(c)
            outcomes += [checks.check(q) for q in queries(found, tables, catalog, server_major(conn))]
        except psycopg2.Error as exc:
            raise DatabaseError(f"pre-flight checks could not read the target: {first_line(exc)}") from exc
        finally:
            conn.rollback()
    return sorted(outcomes, key=lambda o: o.statement)
