"""Stage 8 (deploy): the advisory lock that serializes every apply, rollback and maintain on a database."""

from __future__ import annotations

import hashlib
import time

from ..errors import LockTimeoutError

# One advisory lock for every reconcile apply on a database (a stable 63-bit key from the tool's name).
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"reconcile apply").digest()[:8], "big") >> 1


def apply_lock_holder(cur) -> int | None:
    """The pid of another session that holds the apply lock (an apply, rollback or maintain running now)."""
    cur.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND ((classid::bigint << 32) | objid::bigint) = %s AND objsubid = 1 AND pid <> pg_backend_pid() LIMIT 1", (ADVISORY_LOCK_KEY,))
    row = cur.fetchone()
    return row[0] if row else None


def acquire_apply_lock(cur, wait_ms: int) -> None:
    deadline = time.monotonic() + wait_ms / 1000
    delay = 0.05
    while True:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        if cur.fetchone()[0]:
            return
        if time.monotonic() >= deadline:
            raise LockTimeoutError(
                f"another reconcile apply holds the lock on this database; gave up after "
                f"{wait_ms / 1000:g}s (timeouts.apply_lock_wait in reconcile.yaml)"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def lock_for_change(cur, timeouts) -> None:
    """The apply lock, then the session's lock_timeout for what follows outside the plan's own
    transactions: a session holding reconcile's tables (history, progress) makes the change stop with
    a message (deploy/own_tables.py) instead of waiting for it without end."""
    acquire_apply_lock(cur, timeouts.apply_lock_wait_ms)
    cur.execute("SELECT set_config('lock_timeout', %s, false)", (f"{timeouts.lock_timeout_ms}ms",))
