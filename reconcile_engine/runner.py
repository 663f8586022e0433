"""Running a plan's statements, for the rehearsal (on scratch copies) and deploy (on the target):
batches of statements in one round trip, commit points, online steps outside the transaction, and
the error that names the statement that failed. The one place that executes plan statements."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import psycopg2

from .batched_statement import NotBatchable, key_range_sql, shape_of
from .connections import first_line
from .diff.operations import Facts
from .lock_table import LockTable, advice, extrapolated, is_lock_table_full, read_lock_table
from .planning.online import index_name
from .scratch.inert import InertFunctions
from .sqltext import quote_part


BATCH_SIZE = 100  # statements per round trip when building scratch databases and rehearsing
# A transaction of more statements than this may fill a default lock table (64 locks per session):
# the table's settings are read before it begins, so that its error can say what value would do.
LOCK_TABLE_CHECKED_FROM = 64


def execute_batched(cur, texts: list[str], run_one, *, savepoints: bool, alone=()) -> None:
    """Run SQL texts BATCH_SIZE at a time, one round trip per batch: a scratch database's build and a
    rehearsal send thousands, and each round trip costs more than a typical DDL statement.

    A batch runs as one unit (an implicit transaction, or under a savepoint inside the caller's
    transaction); when it fails it is undone and its texts run again through `run_one(index)`, one at
    a time, so the error names the very statement (and its position) that fails. Statements that must
    run alone end up run that way: those whose index is in `alone` (transaction control, by its facts)
    are never batched; CONCURRENTLY, which a batch refuses, fails its batch and then runs alone.
    Not for apply: statement_timeout would then bound a batch rather than each statement.
    """
    start = 0
    while start < len(texts):
        end = start
        while end < len(texts) and end - start < BATCH_SIZE and end not in alone:
            end += 1
        if end - start > 1:
            try:
                if savepoints:
                    cur.execute("SAVEPOINT reconcile_batch")
                # A newline before each ';' ends any trailing line comment.
                cur.execute("\n;\n".join(texts[start:end]))
                if savepoints:
                    cur.execute("RELEASE SAVEPOINT reconcile_batch")
                start = end
                continue
            except psycopg2.Error:
                if savepoints:
                    cur.execute("ROLLBACK TO SAVEPOINT reconcile_batch")
        for index in range(start, max(end, start + 1)):
            run_one(index)
        start = max(end, start + 1)


@dataclasses.dataclass(frozen=True)
class Unit:
    """What apply runs and records as one: a transaction (consecutive statements that are not online
    steps; commit points may still cut it), or one online step on its own. Named by the number of its
    first statement, which is what reconcile.progress records when it is done."""

    number: int
    statements: tuple  # (number, statement) pairs
    alone: bool


def plan_units(statements, first: int = 1) -> list[Unit]:
    """A plan's statements in the order they run: its transactions and its online steps in between.
    first: the number of the first statement (a part of a plan run on its own)."""
    units, part = [], []
    for number, statement in enumerate(statements, first):
        if getattr(statement, "online_step", False):
            if part:
                units.append(Unit(part[0][0], tuple(part), False))
                part = []
            units.append(Unit(number, ((number, statement),), True))
        else:
            part.append((number, statement))
    if part:
        units.append(Unit(part[0][0], tuple(part), False))
    return units


@functools.lru_cache(maxsize=None)
def _bare_facts(node: str, transaction_control: bool) -> Facts:
    return Facts(node, transaction_control=transaction_control)


def runner_facts(facts: Facts) -> Facts:
    """Of a statement's facts, only what running it reads (its node type, for its inert form, and
    whether it is transaction control), one shared object for each: for statements that are only run,
    such as those that build a copy of a target (at 10,000 tables, 100,000 of them)."""
    return _bare_facts(facts.node, facts.transaction_control)


def in_one_transaction(statements) -> bool:
    """Whether a plan's statements can all run in the caller's one transaction (which it may then roll
    back): no online step, commit point, transaction control, or statement run in batches."""
    return not any(getattr(s, "online_step", False) or s.commit_after or s.facts.transaction_control
                   or getattr(s, "batch_rows", 0) or getattr(s, "data_step", False) for s in statements)


def run_statements(conn, statements, label: str, begin=lambda cur: None, *, batched: bool = False,
                   inert: InertFunctions | None = None, skip=frozenset(), ran=None, first: int = 1) -> None:
    """Run a plan's statements in the connection's transaction, naming the one that fails.

    A statement marked commit_after is committed with everything before it; `begin(cur)` runs at
    the start and after each such commit (transaction-local settings end with the transaction).
    batched: send them in batches (rehearsals on a scratch copy; never apply, see execute_batched).
    inert: in a scratch database, run each statement's inert form (inert.py); the caller puts the
    functions' bodies back with inert.restore once everything has run.
    skip: numbers of statements not to run (apply: data steps that already ran; a commit point on
    one is still a commit point). ran(cur, number, statement): called after each statement that ran,
    in its transaction, so that what it writes (apply's record of a data step) commits or rolls back
    with the statement; only for statements run one at a time, as written (not batched, not inert).
    first: the plan number of the first statement (a unit of a plan, see plan_units).
    """
    if ran is not None and (batched or inert is not None):
        raise ValueError("ran= needs each statement run once, as written: not batched, not inert")
    committed_through = 0
    with conn.cursor() as cur:
        transactions = _transaction_sizes(statements, first)
        lock_table = read_lock_table(cur) if max(transactions.values(), default=0) > LOCK_TABLE_CHECKED_FROM else None

        def run_one(number: int, statement, text: str) -> None:
            try:
                cur.execute(text)
            except psycopg2.Error as exc:
                raise PlanStatementFailed(label, number, statement, exc, committed_through,
                                          _lock_advice(lock_table, exc, transactions, max(committed_through, first - 1), number)) from exc

        def run(part: list) -> None:
            runs = [(number, statement, text) for number, statement in part
                    for text in (inert.texts(statement.sql, statement.facts.node) if inert is not None
                                 else (statement.sql,))]
            if batched:
                alone = {i for i, (_, statement, _) in enumerate(runs) if statement.facts.transaction_control}
                execute_batched(cur, [text for _, _, text in runs], lambda i: run_one(*runs[i]), savepoints=True,
                                alone=alone)
            else:
                for run_ in runs:
                    run_one(*run_)
                    if ran is not None:
                        ran(cur, *run_[:2])

        begin(cur)
        part = []
        for number, statement in enumerate(statements, first):
            if getattr(statement, "online_step", False):
                continue  # runs on its own: run_online_step
            if number not in skip:
                part.append((number, statement))
            if statement.commit_after:
                run(part)
                part = []
                conn.commit()
                committed_through = number
                begin(cur)
        run(part)


def run_online_step(conn, number: int, statement, label: str, session_settings: str = "") -> None:
    """One step outside the transaction (autocommit). A CREATE INDEX CONCURRENTLY that failed or was
    interrupted before leaves an INVALID index of the same name: drop it, then build it again."""
    conn.autocommit = True
    with conn.cursor() as cur:
        try:
            if session_settings:
                cur.execute(session_settings)
            index = index_name(statement)
            if index is not None:
                cur.execute("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (index,))
                row = cur.fetchone()
                if row is not None and row[0]:
                    cur.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
            cur.execute(statement.sql)
        except psycopg2.Error as exc:
            raise PlanStatementFailed(label, number, statement, exc) from exc


def run_on_scratch(conn, statements, label: str, inert: InertFunctions | None = None, *, first: int = 1) -> None:
    """A whole plan on a scratch database (a rehearsal, either way): its transactions batched, its online
    steps on their own, in the plan's order, as apply runs them. Functions' bodies stay inert until the
    caller restores them. first: the number of the first statement, when `statements` are a part of a
    plan cut at its commit points (each part then runs as it would have in the whole)."""
    for unit in plan_units(statements, first):
        if not unit.alone:
            if conn.autocommit:
                conn.autocommit = False
            run_statements(conn, [s for _, s in unit.statements], label, batched=True, inert=inert, first=unit.number)
            conn.commit()
            continue
        number, step = unit.statements[0]
        if not conn.autocommit:
            conn.commit()
        if step.batch_rows or getattr(step, "data_step", False):
            run_in_batches(conn, number, step, label, Batches(step.batch_rows, lambda cur: None))
        else:
            run_online_step(conn, number, step, label)
    if conn.autocommit:
        conn.autocommit = False


@dataclasses.dataclass(frozen=True)
class Batches:
    """How a statement is run in batches on a connection: the settings each batch's transaction
    begins with, where to resume, and what to record in each batch's transaction."""

    rows: int  # rows per batch, by the table's primary key; 0: the statement whole, in one transaction
    begin: Callable  # begin(cur): each batch's transaction-local settings
    resume_after: list | None = None  # the key (as text, one per column) the last committed batch ended at
    record_batch: Callable = lambda cur, key: None  # in the batch's transaction: key=None for the last
    on_progress: Callable = lambda message: None


def run_in_batches(conn, number: int, statement, label: str, batches: Batches) -> int:
    """Run an UPDATE, DELETE or INSERT ... SELECT in batches of its table's primary key, each batch a
    transaction of its own that also records how far it got, so that an interrupted run resumes after
    the last batch committed and no row is done twice. A statement that cannot be cut (no primary key,
    a RETURNING...) runs whole, in one transaction. Returns the number of rows it touched."""
    if not conn.autocommit:
        conn.commit()
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            if not batches.rows:
                return _one_batch(conn, cur, number, statement, statement.sql, label, batches, None)
            try:
                shape = shape_of(statement.sql)
                keys = _primary_key(cur, shape.table)
            except NotBatchable as why:
                batches.on_progress(f"{label}: statement {number} runs in one transaction: {why}")
                return _one_batch(conn, cur, number, statement, statement.sql, label, batches, None)
            low = _row_literal(cur, keys, batches.resume_after) if batches.resume_after else None
            touched = 0
            while True:
                batches.begin(cur)
                high_key = _batch_end(cur, shape.table, keys, low, batches.rows, number, statement, label)
                high = _row_literal(cur, keys, high_key) if high_key else None
                sql = key_range_sql(statement.sql, shape, [k for k, _ in keys], low, high)
                touched += _one_batch(conn, cur, number, statement, sql, label, batches, high_key, begun=True)
                if high_key is None:
                    return touched
                batches.on_progress(f"{label}: statement {number}: {touched} rows so far")
                low = high
    finally:
        if not conn.closed:
            conn.rollback()
            conn.autocommit = True


def _one_batch(conn, cur, number, statement, sql, label, batches: Batches, high_key, begun=False) -> int:
    try:
        if not begun:
            batches.begin(cur)
        cur.execute(sql)
        touched = max(cur.rowcount, 0)
        batches.record_batch(cur, high_key)
        conn.commit()
        return touched
    except psycopg2.Error as exc:
        conn.rollback()
        raise PlanStatementFailed(label, number, statement, exc) from exc


def _primary_key(cur, table: str) -> list[tuple[str, str]]:
    """(column, type) of the table's primary key, in key order; NotBatchable without one."""
    cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_index i "
                "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
                "ORDER BY array_position(i.indkey::int2[], a.attnum)", (table,))
    keys = cur.fetchall()
    if not keys:
        raise NotBatchable(f"{table} has no primary key to cut it by")
    return keys


def _row_literal(cur, keys, values) -> str:
    """('v1'::type1, 'v2'::type2): a key read back as text, typed again."""
    return "(" + ", ".join(cur.mogrify("%s", (value,)).decode() + f"::{kind}"
                           for (_, kind), value in zip(keys, values, strict=True)) + ")"


def _batch_end(cur, table, keys, low, rows, number, statement, label) -> list | None:
    """The key of the `rows`-th row after `low`, in key order (read through the primary key's index);
    None when fewer rows remain: the last batch is then unbounded above."""
    columns = ", ".join(f"k.{quote_part(k)}" for k, _ in keys)
    where = f"WHERE ({columns}) > {low}" if low else ""
    try:
        cur.execute(f"SELECT {', '.join(f'k.{quote_part(k)}::text' for k, _ in keys)} FROM {table} k {where} "
                    f"ORDER BY {columns} OFFSET {int(rows) - 1} LIMIT 1")
    except psycopg2.Error as exc:
        raise PlanStatementFailed(label, number, statement, exc) from exc
    row = cur.fetchone()
    return list(row) if row else None


def _transaction_sizes(statements, first: int) -> dict[int, int]:
    """{number of the statement a transaction begins after: its statements} (commit points cut them)."""
    sizes, began = {}, first - 1
    for number, statement in enumerate(statements, first):
        sizes[began] = sizes.get(began, 0) + 1
        if statement.commit_after:
            began = number
    return sizes


def _lock_advice(lock_table: LockTable | None, exc, transactions: dict, began_after: int, number: int) -> str:
    if not is_lock_table_full(exc) or lock_table is None:
        return ""
    size = transactions.get(began_after, number - began_after)
    return advice(lock_table, extrapolated(lock_table, size, number - began_after),
                  f"this transaction of {size:,} statements")


class PlanStatementFailed(Exception):
    def __init__(self, label, number, statement, exc, committed_through=0, lock_advice=""):
        self.label, self.number, self.statement, self.error = label, number, statement, exc
        self.committed_through = committed_through
        message = (getattr(exc.diag, "message_primary", None) or first_line(exc)).strip()
        if lock_advice:
            message = lock_advice
        summary = getattr(statement, "summary", None) or statement.sql.strip().splitlines()[0][:80]
        where = _failing_line(statement, exc)
        super().__init__(f"{label}: statement {number} ({summary}) failed{f' at {where}' if where else ''}: {message}")


def _failing_line(statement, exc) -> str | None:
    """Where in a statement of several lines the server says it failed: the plan file's line when the
    statement was read from one, else the line within the statement; None when the server gives no
    position, or the text it ran is not the statement as written (a batch of a data step, an inert form)."""
    position = getattr(exc.diag, "statement_position", None)
    query = getattr(getattr(exc, "cursor", None), "query", None)
    if not position or not str(position).isdigit() or query is None:
        return None
    ran = query.decode("utf-8", "replace") if isinstance(query, bytes) else str(query)
    if ran != statement.sql:
        return None
    # The position counts characters from 1, as Python's indexes do from 0.
    line_within = statement.sql.count("\n", 0, int(position) - 1)
    source_file, source_line = getattr(statement, "source_file", None), getattr(statement, "source_line", None)
    if source_file is not None and source_line is not None:
        return f"{_shown(Path(source_file))}:{source_line + line_within}"
    return f"line {line_within + 1} of the statement" if "\n" in statement.sql.strip() else None


def _shown(path: Path) -> str:
    """A path as the user would type it from here: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except (ValueError, OSError):
        return str(path)
