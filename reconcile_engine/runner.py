"""Running a plan's statements, for the rehearsal (on scratch copies) and deploy (on the target):
batches of statements in one round trip, commit points, online steps outside the transaction, and
the error that names the statement that failed. The one place that executes plan statements."""

from __future__ import annotations

import psycopg2

from .connections import first_line
from .planning.online import index_name
from .scratch.inert import InertFunctions


BATCH_SIZE = 100  # statements per round trip when building scratch databases and rehearsing


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


def run_statements(conn, statements, label: str, begin=lambda cur: None, *, batched: bool = False,
                   inert: InertFunctions | None = None, skip=frozenset(), ran=None) -> None:
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
    """
    if ran is not None and (batched or inert is not None):
        raise ValueError("ran= needs each statement run once, as written: not batched, not inert")
    committed_through = 0
    with conn.cursor() as cur:

        def run_one(number: int, statement, text: str) -> None:
            try:
                cur.execute(text)
            except psycopg2.Error as exc:
                raise PlanStatementFailed(label, number, statement, exc, committed_through) from exc

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
        for number, statement in enumerate(statements, 1):
            if getattr(statement, "online_step", False):
                continue  # runs after the transaction: run_online_step
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


class PlanStatementFailed(Exception):
    def __init__(self, label, number, statement, exc, committed_through=0):
        self.label, self.number, self.statement, self.error = label, number, statement, exc
        self.committed_through = committed_through
        message = (getattr(exc.diag, "message_primary", None) or first_line(exc)).strip()
        summary = getattr(statement, "summary", None) or statement.sql.strip().splitlines()[0][:80]
        super().__init__(f"{label}: statement {number} ({summary}) failed: {message}")
