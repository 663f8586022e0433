"""Stage 8 (deploy): the advisory lock that serializes every apply, rollback and maintain on a database."""

from __future__ import annotations

import hashlib
import time

from ..errors import LockTimeoutError

# One advisory lock for every reconcile apply on a database (a stable 63-bit key from the tool's name).
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"reconcile apply").digest()[:8], "big") >> 1



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
