"""Stage 8 (deploy): what goes wrong on reconcile's own tables on the target (history, progress, data
steps), said as what to do. A leaf: history.py and data_steps.py wrap their reads and writes with it."""

from __future__ import annotations

import functools

import psycopg2
import psycopg2.errors

from ..config import TOOL_SCHEMA
from ..connections import first_line
from ..errors import HistoryUnavailableError
from ..sqltext import quote_ident


def grants_needed(role: str) -> str:
    """The statements that let `role` read and write reconcile's tables made by another role."""
    who = quote_ident(role)
    schema = quote_ident(TOOL_SCHEMA)
    return (f"GRANT USAGE ON SCHEMA {schema} TO {who}; "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {who}; "
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {who}")


def on_own_tables(function):
    """Turn a lock timeout or a missing privilege on reconcile's tables into HistoryUnavailableError,
    naming the fix. The caller's transaction is left as the error left it (the caller rolls back)."""

    @functools.wraps(function)
    def guarded(cur, *args, **kwargs):
        try:
            return function(cur, *args, **kwargs)
        except psycopg2.errors.LockNotAvailable as exc:
            raise HistoryUnavailableError(
                f"reconcile's own tables in schema {TOOL_SCHEMA} are locked by another session for longer than "
                f"lock_timeout ({first_line(exc)})",
                f"end that session or wait for it; it is one of SELECT pid, state, query FROM pg_stat_activity "
                f"WHERE pid IN (SELECT pid FROM pg_locks WHERE relation::regclass::text LIKE '{TOOL_SCHEMA}.%')"
            ) from exc
        except psycopg2.errors.InsufficientPrivilege as exc:
            role = cur.connection.info.user or "<the deploy role>"
            raise HistoryUnavailableError(
                f"{first_line(exc)}: reconcile's own tables in schema {TOOL_SCHEMA} were made by another role",
                f"once, as their owner (or a superuser): {grants_needed(role)}"
            ) from exc

    return guarded
