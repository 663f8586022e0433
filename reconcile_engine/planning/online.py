"""Stage 5c: online steps. On a live target, a plan's slow, blocking statements become steps that run
after its transaction commits, each on its own, so that writes go on while they run:

- CREATE INDEX on an existing table -> CREATE INDEX CONCURRENTLY (a failed build leaves an INVALID
  index, which apply detects and rebuilds when it resumes);
- VALIDATE CONSTRAINT (migra already adds foreign keys and checks NOT VALID) -> its own transaction,
  where it holds only a SHARE UPDATE EXCLUSIVE lock;
- ADD CONSTRAINT ... USING INDEX of such an index -> after the index exists;
- SET NOT NULL -> a CHECK (col IS NOT NULL) added NOT VALID, validated on its own, then SET NOT NULL
  (which then skips its scan) and the check dropped.

Apply records each step as it completes, so an interrupted apply resumes where it stopped.
"""

from __future__ import annotations

import dataclasses

from pglast import ast, parse_sql
from pglast.enums import AlterTableType
from pglast.stream import RawStream

from .hazards import hazards_of, tables_created
from ..inspection.snapshot import CatalogSnapshot
from .build import Plan, PlannedStatement
from ..sqltext import quote_ident


def _single(sql: str):
    try:
        nodes = parse_sql(sql)
    except Exception:
        return None
    return nodes[0].stmt if len(nodes) == 1 else None


def _table(rangevar) -> str:
    return f"{rangevar.schemaname or 'public'}.{rangevar.relname}"


def make_online(plan: Plan, current: CatalogSnapshot) -> Plan:
    relkind = current.fact("relkind")
    created: set[str] = set()
    main, steps, moved_indexes = [], [], set()
    for statement in plan.statements:
        node = _single(statement.sql)
        online = None
        if isinstance(node, ast.IndexStmt) and not node.concurrent:
            table = _table(node.relation)
            # A new table is empty; a partitioned table cannot be indexed concurrently.
            if table not in created and relkind.get(table) == "r" and node.idxname:
                node.concurrent = True
                node.if_not_exists = True
                online = RawStream()(node) + ";"
                moved_indexes.add(node.idxname)
        elif isinstance(node, ast.AlterTableStmt) and len(node.cmds) == 1:
            cmd = node.cmds[0]
            if cmd.subtype == AlterTableType.AT_SetNotNull and relkind.get(_table(node.relation)) == "r" \
                    and _table(node.relation) not in created:
                check, validate, steps_sql = _not_null_by_check(node, cmd.name)
                main.append(dataclasses.replace(statement, sql=check, hazards=hazards_of(check, current)))
                for sql in (validate, *steps_sql):
                    steps.append(dataclasses.replace(statement, sql=sql, online_step=True,
                                                     hazards=hazards_of(sql, current)))
                continue
            if cmd.subtype == AlterTableType.AT_ValidateConstraint and _table(node.relation) not in created:
                online = statement.sql
            elif (cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.indexname
                  and cmd.def_.indexname in moved_indexes):
                online = statement.sql
        created |= tables_created(statement.sql)
        if online is None:
            main.append(statement)
        else:
            steps.append(dataclasses.replace(statement, sql=online, online_step=True,
                                             hazards=hazards_of(online, current)))
    if not steps:
        return plan
    return dataclasses.replace(plan, statements=tuple(main + steps))


def _not_null_by_check(node, column: str) -> tuple[str, str, tuple[str, str]]:
    """SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock. A CHECK (col IS NOT NULL) added
    NOT VALID and validated on its own lets SET NOT NULL skip the scan (PostgreSQL 12+); then it goes."""
    table = RawStream()(node.relation)
    name = quote_ident(f"{node.relation.relname}_{column}_not_null_check"[:63])
    col = quote_ident(column)
    return (
        f"alter table {table} add constraint {name} check ({col} is not null) not valid;",
        f"alter table {table} validate constraint {name};",
        (f"alter table {table} alter column {col} set not null;",
         f"alter table {table} drop constraint if exists {name};"),
    )


def index_name(statement: PlannedStatement) -> str | None:
    """The index a CREATE INDEX CONCURRENTLY step builds."""
    node = _single(statement.sql)
    if isinstance(node, ast.IndexStmt) and node.concurrent:
        schema = node.relation.schemaname or "public"
        return f"{schema}.{node.idxname}"
    return None
