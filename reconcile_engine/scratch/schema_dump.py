"""Stage 2: the schema (no data) of some schemas of a database, as pg_dump writes it, ready to run
in a scratch database with psycopg2."""

from __future__ import annotations

import os
import subprocess

import psycopg2

from ..connections import connected, first_line, libpq_environment, redact
from ..errors import DatabaseError
from ..lock_table import advice, read_lock_table
from ..servers import pg_dump_path


def exact_pattern(name: str) -> str:
    """A pg_dump pattern matching exactly `name`: quoted, so that case, dots and pattern characters
    (* ? + ...) are taken literally."""
    return '"' + name.replace('"', '""') + '"'


def dump_schemas(source_url: str, schemas: tuple[str, ...], what: str, *, privileges: bool = False,
                 options: tuple[str, ...] = (), hint: str = "") -> str:
    """pg_dump --schema-only of `schemas` (exactly those names), without owners, and without grants
    unless `privileges`; `options` are more of pg_dump's; `what` and `hint` are for errors."""
    # The password goes through pg_dump's environment, never its arguments (the process list shows those).
    url, environment = libpq_environment(source_url)
    command = [str(pg_dump_path()), "--schema-only", "--no-owner", *options]
    if not privileges:
        command.append("--no-privileges")
    for schema in schemas:
        command += ["--schema", exact_pattern(schema)]
    try:
        dumped = subprocess.run([*command, "--dbname", url], check=True, capture_output=True, text=True,
                                timeout=600, env=os.environ | environment)
    except subprocess.CalledProcessError as exc:
        message = redact((exc.stderr or "").strip().splitlines()[-1] if exc.stderr.strip() else str(exc))
        if "out of shared memory" in (exc.stderr or ""):
            message = _lock_table_message(source_url, schemas) or message
        raise DatabaseError(f"cannot copy {what} with pg_dump: {message}{hint}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseError(f"cannot run pg_dump: {first_line(exc)}") from exc
    return dumped.stdout


def _lock_table_message(source_url: str, schemas: tuple[str, ...]) -> str | None:
    """pg_dump locks every table it dumps in one transaction: how many that is, and the setting that
    would hold them (its own message names the setting, without a value)."""
    try:
        with connected(source_url) as conn, conn.cursor() as cur:
            cur.execute("""SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')""",
                        (list(schemas),))
            relations = cur.fetchone()[0]
            table = read_lock_table(cur)
    except psycopg2.Error:
        return None
    return advice(table, relations, f"pg_dump (one lock per table, view and sequence: {relations:,})")


def restorable(dump: str, known_settings: set[str]) -> str:
    """pg_dump's text for psycopg2: no psql meta-commands, no settings this server lacks
    (pg_dump 18 sets transaction_timeout, unknown to 15), and schemas that may already exist."""
    lines = []
    for line in dump.splitlines():
        if line.startswith("\\"):  # \restrict and \unrestrict (pg_dump 17.6+) are psql commands
            continue
        if line.startswith("SET ") and line.split()[1] not in known_settings:
            continue
        if line.startswith("CREATE SCHEMA ") and "IF NOT EXISTS" not in line:
            line = line.replace("CREATE SCHEMA ", "CREATE SCHEMA IF NOT EXISTS ", 1)
        lines.append(line)
    return "\n".join(lines)


def run_dump(cur, dump: str) -> None:
    """Run a dump (see restorable) on a scratch database's cursor."""
    cur.execute("SELECT name FROM pg_settings")
    known = {row[0] for row in cur.fetchall()}
    cur.execute(restorable(dump, known))
