"""Stage A1 (pull): the live database's schema, as pg_dump writes it, for the managed schemas.

pg_dump runs as it does for a rehearsal's copy (scratch/schema_dump.py): the embedded package's
pg_dump, new enough for any server, with the password in its environment, never in its arguments. Ignored tables (config ignore:) are left out by pg_dump already
where a glob translates to its patterns; the layout filters them again in any case.
"""

from __future__ import annotations

from ..config import Config
from ..connections import connected, describe
from ..scratch.schema_dump import dump_schemas, exact_pattern

# Left out at the source: what a declared file may not hold, or what pull does not write.
_LEAVE_OUT = ("--no-tablespaces", "--no-security-labels", "--no-publications",
              "--no-subscriptions", "--no-table-access-method")


def table_pattern(glob: str) -> str | None:
    """A config ignore: glob ("public.*_backup") as a pg_dump pattern; None when it has no exact
    translation (character classes), which the layout's own filter then covers."""
    if "[" in glob:
        return None
    schema, _, name = glob.partition(".")
    return f"{_glob_part(schema)}.{_glob_part(name)}"


def _glob_part(glob: str) -> str:
    out, literal = [], []
    for char in glob:
        if char in "*?":
            if literal:
                out.append(exact_pattern("".join(literal)))
                literal = []
            out.append(char)
        else:
            literal.append(char)
    if literal:
        out.append(exact_pattern("".join(literal)))
    return "".join(out)


def dump_schema(config: Config, url: str) -> str:
    """pg_dump's schema-only text for the managed schemas, without psql's backslash commands."""
    options = list(_LEAVE_OUT)
    for glob in config.ignore:
        pattern = table_pattern(glob)
        if pattern is not None:
            options += ["--exclude-table", pattern]
    dumped = dump_schemas(url, config.managed_schemas, f"the schema of {describe(url)}",
                          privileges=config.privileges, options=tuple(options),
                          hint=f" (the role must be able to read the managed schemas {', '.join(config.managed_schemas)})")
    # \restrict and \unrestrict (pg_dump 17.6+) are psql's commands, not SQL.
    return "\n".join(line for line in dumped.splitlines() if not line.startswith("\\"))


def extensions_in(config: Config, url: str) -> tuple[str, ...]:
    """The extensions installed in the managed schemas: pg_dump writes no CREATE EXTENSION for a
    chosen schema, yet drift compares them; reconcile.yaml's extensions: makes them."""
    with connected(url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        cur.execute("SELECT e.extname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                    "WHERE n.nspname = ANY(%s) ORDER BY 1", (list(config.managed_schemas),))
        return tuple(row[0] for row in cur.fetchall())
