"""Beside the runner and the scratch stage: what to say when the server's lock table is full (SQLSTATE
53200, "out of shared memory"): the setting to raise and the value that would do, instead of
PostgreSQL's hint, which names the setting but no value.

The lock table is shared by all sessions: it holds max_locks_per_transaction x (max_connections +
max_prepared_transactions) locks, and one transaction may take most of them. A statement that creates
or alters a relation takes a lock on it (on its indexes and TOAST table too) until the transaction ends.
"""

from __future__ import annotations

import dataclasses
import math

OUT_OF_SHARED_MEMORY = "53200"
SETTINGS_SQL = """SELECT current_setting('max_locks_per_transaction')::int,
                         current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int"""
MARGIN = 1.25  # other sessions hold locks too


@dataclasses.dataclass(frozen=True)
class LockTable:
    max_locks_per_transaction: int
    sessions: int  # max_connections + max_prepared_transactions

    @property
    def slots(self) -> int:
        return self.max_locks_per_transaction * self.sessions


def read_lock_table(cur) -> LockTable:
    cur.execute(SETTINGS_SQL)
    return LockTable(*cur.fetchone())


def is_lock_table_full(exc) -> bool:
    return getattr(exc, "pgcode", None) == OUT_OF_SHARED_MEMORY


def needed_setting(table: LockTable, locks: int) -> int:
    """The least max_locks_per_transaction whose lock table holds `locks` with a margin."""
    return max(table.max_locks_per_transaction + 1, math.ceil(locks * MARGIN / table.sessions))


def advice(table: LockTable | None, locks: int, what: str) -> str:
    """One sentence: why the lock table filled up, and what to set it to. `locks`: how many locks
    `what` needs (an estimate); without the table's settings, the default ones are assumed."""
    table = table or LockTable(64, 100)
    value = needed_setting(table, locks)
    return (f"the server's lock table is full: {what} needs about {locks:,} locks in one transaction, and "
            f"the lock table holds max_locks_per_transaction x (max_connections + max_prepared_transactions) "
            f"= {table.max_locks_per_transaction} x {table.sessions} = {table.slots:,}; set "
            f"max_locks_per_transaction to at least {value} (a server setting, read at start: on a hosted "
            f"server, ask its provider)")


def extrapolated(table: LockTable, statements_in_transaction: int, failed_at: int) -> int:
    """The locks a transaction of N statements needs, from how far it got before the table filled up:
    the slots it had, times N over the statements that had run."""
    return math.ceil(table.slots * statements_in_transaction / max(failed_at, 1))
