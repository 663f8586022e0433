"""AppProbe: a second connection that plays "the application" during a migration and measures how long
it was blocked. Each round runs the given statements in order (autocommit); `{n}` in a statement is
replaced by the round number (0, 1, 2 ...), so that inserts can make unique values:

    with AppProbe(url, ["SELECT count(*) FROM t", "INSERT INTO t (v) VALUES ('r{n}') RETURNING id"]) as probe:
        ... run the migration ...
    assert probe.longest_wait < 0.5 and not probe.errors
"""

from __future__ import annotations

import threading
import time

import psycopg2


def _text(error: Exception) -> str:
    return " ".join(str(error).split())  # one line


class AppProbe:
    """Every `interval` seconds (the pause between rounds), one round of `statements` on its own connection
    (application_name 'app_probe'). After the block: `longest_wait` (seconds, the longest round), `rounds`,
    `latencies` (each round's), `returned` (statement index -> first column of every row it returned) and
    `errors` (it keeps going after one, reconnecting if the connection died)."""

    def __init__(self, url: str, statements: list[str], interval: float = 0.05):
        self.url, self.statements, self.interval = url, list(statements), interval
        self.longest_wait, self.rounds = 0.0, 0
        self.latencies: list[float] = []
        self.returned: dict[int, list] = {i: [] for i in range(len(self.statements))}
        self.errors: list[str] = []
        self._conn = None
        self._stop, self._first_round = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="app_probe", daemon=True)

    def __enter__(self) -> AppProbe:
        self._thread.start()
        self._first_round.wait()  # the probe is issuing queries before the caller goes on
        return self

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            self.errors.append("probe still blocked 30 s after the block ended")
        return False

    def _connect(self) -> None:
        self._conn = psycopg2.connect(self.url, application_name="app_probe", connect_timeout=10)
        self._conn.autocommit = True

    def _round(self, n: int) -> None:
        if self._conn is None or self._conn.closed:
            self._connect()  # inside the round: a connection the server refuses is a wait too
        for index, statement in enumerate(self.statements):
            try:
                with self._conn.cursor() as cur:
                    cur.execute(statement.replace("{n}", str(n)))
                    if cur.description is not None:
                        self.returned[index].extend(row[0] for row in cur.fetchall())
            except psycopg2.Error as error:
                self.errors.append(f"round {n}, statement {index}: {_text(error)}")
                if self._conn.closed:
                    return  # reconnected at the next round

    def _run(self) -> None:
        try:
            try:
                self._connect()
            except psycopg2.Error as error:
                self.errors.append(f"connect: {_text(error)}")
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    self._round(self.rounds)
                except Exception as error:  # the reconnection failed, or the unforeseen: noted, not fatal
                    self.errors.append(f"round {self.rounds}, connect: {_text(error)}")
                elapsed = time.perf_counter() - started
                self.latencies.append(elapsed)
                self.longest_wait = max(self.longest_wait, elapsed)
                self.rounds += 1
                self._first_round.set()
                self._stop.wait(self.interval)
        finally:
            self._first_round.set()
            if self._conn is not None:
                self._conn.close()
