"""The fixtures' last word: `pg_dump --schema-only` of two databases, compared statement by statement,
less what reconcile documents as not compared (README, "Not compared"): column order within a table,
and, on PostgreSQL 18, the names of a partition's NOT NULL constraints; and less what a server adds on
its own."""

import re

from reconcile_engine.scratch.schema_dump import dump_schemas

_SKIPPED = ("--", "SET ", "SELECT pg_catalog.set_config", "\\")
_ATTACHED = re.compile(r"ATTACH PARTITION (\S+) ")
_NAMED_NOT_NULL = re.compile(r"CONSTRAINT \S+ NOT NULL")
_OPTIONS = re.compile(r"WITH \((.*)\)")
# Debian's PostgreSQL 15 keeps an entry of its own in every column's options, which pg_dump writes out.
_SERVER_OWN_OPTION = re.compile(r"(, )?pg_attver=\d+")


def schema_statements(url: str, schemas=("public",)) -> set[str]:
    text = dump_schemas(url, tuple(schemas), "a fixture's database", privileges=True)
    statements, lines = [], []
    for line in text.splitlines():
        if not line.strip() or line.startswith(_SKIPPED):
            continue
        lines.append(line)
        if line.rstrip().endswith(";"):
            statements.append(lines)
            lines = []
    partitions = {m.group(1) for s in statements for m in _ATTACHED.finditer(" ".join(s))}
    out = set()
    for statement in statements:
        statement = [_SERVER_OWN_OPTION.sub("", line).replace("SET (, ", "SET (") for line in statement]
        if any(line.rstrip().endswith("SET ();") for line in statement):
            continue
        head = statement[0]
        if head.startswith("CREATE TABLE ") and len(statement) > 2:
            columns = [line.strip().rstrip(",") for line in statement[1:-1]]
            if head.split()[2] in partitions:
                columns = [_NAMED_NOT_NULL.sub("NOT NULL", column) for column in columns]
            statement = [head, *sorted(columns), statement[-1]]
        statement = [_OPTIONS.sub(lambda m: "WITH (" + ", ".join(sorted(m.group(1).split(", "))) + ")", line)
                     for line in statement]
        out.add("\n".join(statement))
    return out
