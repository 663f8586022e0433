"""Stage 2b: what runs in a scratch database runs inert. Declared code never executes while a state
is built (the declared files' build) or proven (a plan's rehearsal).

PostgreSQL evaluates expressions while it runs DDL, even on empty tables: a materialized view's query
when it is created WITH DATA, and, by constant folding, any IMMUTABLE or STABLE function called with
constant arguments in an index expression or predicate, a generated column, a CHECK constraint added
to a table, a column added with a default, a domain's default, a partition bound (there at any
volatility), or inside a SQL function inlined into one of those. So in a scratch database:

- a materialized view is created WITH NO DATA, and REFRESH refreshes it WITH NO DATA;
- a function or procedure runs as written (PostgreSQL validates its body in place, as apply will),
  and is at once replaced by a stub of the same signature and attributes whose body does nothing;
  the real bodies are put back, unvalidated since they were validated already, once everything else
  has run and before the database is inspected (InertFunctions.restore).
Functions already on the target, copied into a rehearsal copy, keep their bodies: they are the
target's reviewed code, not the pull request's.
"""

from __future__ import annotations

import dataclasses
import secrets

import pglast.ast as ast
import psycopg2
from pglast import parse_sql
from pglast import parser as pg_parser
from pglast.enums import FunctionParameterMode, ObjectType
from pglast.stream import RawStream

from ..connections import first_line
from ..errors import ScratchError


STUB_MARK = "reconcile inert stub "
# A stub returns nothing where a function may (sets, OUT parameters, void, procedures), else NULL.
_NOTHING_MODES = (FunctionParameterMode.FUNC_PARAM_OUT, FunctionParameterMode.FUNC_PARAM_INOUT,
                  FunctionParameterMode.FUNC_PARAM_TABLE)
_NOTHING_TYPES = ("void", "event_trigger")
_STUB_KEEPS = ("volatility", "strict")
_NOT_SQL = ("SQL_COMMENT", "C_COMMENT", "ASCII_59")  # comments, and the ';' ending a plan's statement


@dataclasses.dataclass(frozen=True)
class StubbedFunction:
    marker: str  # in the stub's body, so that restore() finds the stubs that still exist
    stub: str  # CREATE OR REPLACE ... with a body that does nothing
    restore: str  # the statement as written, as CREATE OR REPLACE


def _tokens(sql: str) -> list:
    return [t for t in pg_parser.scan(sql) if t.name not in _NOT_SQL]


def without_data(sql: str) -> str:
    """CREATE MATERIALIZED VIEW ... ending WITH NO DATA (inserted after the last token, so that
    positions in PostgreSQL's errors still point into the statement as written)."""
    tokens = _tokens(sql)
    names = [t.name for t in tokens[-3:]]
    if names[-3:] == ["WITH", "NO", "DATA_P"]:
        return sql
    if names[-2:] == ["WITH", "DATA_P"]:
        return sql[:tokens[-2].start] + "WITH NO DATA" + sql[tokens[-1].end + 1:]
    end = tokens[-1].end + 1
    return sql[:end] + " WITH NO DATA" + sql[end:]


def _or_replace(sql: str) -> str:
    tokens = _tokens(sql)
    if len(tokens) > 1 and tokens[1].name == "OR":
        return sql
    end = tokens[0].end + 1
    return sql[:end] + " OR REPLACE" + sql[end:]


def _stub_body(node: ast.CreateFunctionStmt, marker: str) -> str:
    returns = node.returnType
    type_name = returns.names[-1].sval if returns is not None else None
    nothing = (node.is_procedure or returns is None or returns.setof or type_name in _NOTHING_TYPES
               or any(p.mode in _NOTHING_MODES for p in node.parameters or ()))
    return f"BEGIN /* {STUB_MARK}{marker} */ RETURN{'' if nothing else ' NULL'}; END"


def stubbed_function(sql: str, node: ast.CreateFunctionStmt) -> StubbedFunction:
    marker = secrets.token_hex(8)
    # The signature and what decides where PostgreSQL accepts a call (an index wants IMMUTABLE) stay;
    # SET clauses, transforms and support functions are the real body's business.
    options = [o for o in node.options or () if o.defname in _STUB_KEEPS]
    options += [ast.DefElem(defname="language", arg=ast.String(sval="plpgsql")),
                ast.DefElem(defname="as", arg=(ast.String(sval=_stub_body(node, marker)),))]
    stub = ast.CreateFunctionStmt(is_procedure=node.is_procedure, replace=True, funcname=node.funcname,
                                  parameters=node.parameters, returnType=node.returnType, options=options)
    return StubbedFunction(marker, RawStream()(stub), _or_replace(sql))


def _refresh_without_data(node: ast.RefreshMatViewStmt) -> str:
    refresh = ast.RefreshMatViewStmt(concurrent=False, skipData=True, relation=node.relation)
    return RawStream()(refresh)


_MAY_NEED_A_SCRATCH_FORM = ("CreateFunctionStmt", "CreateTableAsStmt", "RefreshMatViewStmt")


class InertFunctions:
    """The functions stubbed in one scratch database, until their bodies are put back."""

    def __init__(self):
        self._stubbed: list[StubbedFunction] = []
        self._restored: list[StubbedFunction] = []

    def texts(self, sql: str, node_type: str) -> tuple[str, ...]:
        """What runs in the scratch database for the statement `sql`: itself, or a form of it that
        executes nothing (the first text is always the statement, positions kept, so PostgreSQL's
        errors point into it). node_type: pglast's name for it, as admission or the operation's facts
        read it; only the few kinds that have an inert form are parsed here, to render that form."""
        if node_type not in _MAY_NEED_A_SCRATCH_FORM:
            return (sql,)
        try:
            tree = parse_sql(sql)
        except Exception:  # pglast's ParseError, or input it cannot represent
            return (sql,)  # the server reports what is wrong with it
        if len(tree) != 1:
            return (sql,)
        node = tree[0].stmt
        if isinstance(node, ast.CreateTableAsStmt) and node.objtype == ObjectType.OBJECT_MATVIEW \
                and not node.into.skipData:
            return (without_data(sql),)
        if isinstance(node, ast.RefreshMatViewStmt):
            return (_refresh_without_data(node),)
        if isinstance(node, ast.CreateFunctionStmt):
            function = stubbed_function(sql, node)
            self._stubbed.append(function)
            return (sql, function.stub)
        return (sql,)

    def pending(self) -> list[list[str]]:
        """The stubs not yet restored, as plain data (layers.py keeps them beside a template database
        built with them, so that a database made from it can put their bodies back)."""
        return [[f.marker, f.stub, f.restore] for f in self._stubbed]

    @classmethod
    def resumed(cls, pending: list) -> "InertFunctions":
        """The stubs of a database made from a template built with `pending` (see pending). What it
        reads is only ever run as CREATE FUNCTION statements: anything else is refused (ValueError)."""
        functions = cls()
        for marker, stub, restore in pending:
            for text in (stub, restore):
                tree = parse_sql(str(text))
                if len(tree) != 1 or not isinstance(tree[0].stmt, ast.CreateFunctionStmt):
                    raise ValueError("not one CREATE FUNCTION statement")
            functions._stubbed.append(StubbedFunction(str(marker), str(stub), str(restore)))
        return functions

    def restore(self, conn) -> None:
        """Put back the real bodies of the stubbed functions that still exist (a later statement may
        have dropped or replaced one), in the order they were declared. Bodies are not validated
        again: each was, when its statement ran."""
        if not self._stubbed:
            return
        with conn.cursor() as cur:
            cur.execute("SELECT substring(prosrc FROM %s) FROM pg_proc WHERE prosrc LIKE %s",
                        (STUB_MARK + "([0-9a-f]+)", f"%{STUB_MARK}%"))
            alive = {row[0] for row in cur.fetchall()}
            back = [f for f in self._stubbed if f.marker in alive]
            if back:
                try:
                    cur.execute("\n;\n".join(["SELECT set_config('check_function_bodies', 'off', true)"]
                                             + [f.restore for f in back]))
                except psycopg2.Error as exc:
                    raise ScratchError(f"cannot put a function's body back after the build: {first_line(exc)}") from exc
        self._restored, self._stubbed = back, []

    def stub_again(self, conn) -> None:
        """Stub the functions restore() put back, before more statements run in the same database."""
        if not self._restored:
            return
        with conn.cursor() as cur:
            cur.execute("\n;\n".join(f.stub for f in self._restored))
        self._stubbed, self._restored = self._restored, []
