"""Stage 2: the schema (no data) of some schemas of a database, as pg_dump writes it, ready to run
in a scratch database with psycopg2."""

from __future__ import annotations

import os
import subprocess

from ..connections import first_line, libpq_environment, redact
from ..errors import DatabaseError
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
        raise DatabaseError(f"cannot copy {what} with pg_dump: {message}{hint}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseError(f"cannot run pg_dump: {first_line(exc)}") from exc
    return dumped.stdout


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
