"""Stage 5c: online steps. On a live target, a plan's slow, blocking statements become steps that run
after its transaction commits, each on its own, so that writes go on while they run:

- CREATE INDEX on an existing table -> CREATE INDEX CONCURRENTLY (a failed build leaves an INVALID
  index, which apply detects and rebuilds when it resumes);
- VALIDATE CONSTRAINT (migra already adds foreign keys and checks NOT VALID) -> its own transaction,
  where it holds only a SHARE UPDATE EXCLUSIVE lock;
- ADD CONSTRAINT ... USING INDEX of such an index -> after the index exists, and a foreign key that
  references a table whose new unique index is built so, after it;
- SET NOT NULL -> a CHECK (col IS NOT NULL) added NOT VALID, validated on its own, then SET NOT NULL
  (which then skips its scan) and the check dropped; but in the transaction for a column that becomes
  an identity there (it must be NOT NULL first).

Apply records each step as it completes, so an interrupted apply resumes where it stopped.
"""

from __future__ import annotations

import dataclasses

from pglast import parse_sql
from pglast.stream import RawStream

from ..diff.corrections.partitions import AttachedIndexNames
from ..diff.statement_facts import qualified, read_facts
from ..inspection.snapshot import CatalogSnapshot
from ..sqltext import quote_ident
from .build import Plan, PlannedStatement
from .hazards import hazards_of


# The origin of a partition's index made for its parent's new index to attach.
ATTACHED_BY_PARENT = AttachedIndexNames.name


def _concurrent_index(sql: str) -> str:
    """CREATE INDEX ... as CREATE INDEX CONCURRENTLY IF NOT EXISTS ...: rendered from pglast's tree of
    this one statement (the facts say which statements to rewrite; rendering needs the tree)."""
    node = parse_sql(sql)[0].stmt
    node.concurrent = True
    node.if_not_exists = True
    return RawStream()(node) + ";"


def _step(statement: PlannedStatement, sql: str, current: CatalogSnapshot, *, online_step: bool) -> PlannedStatement:
    """A statement online rewriting makes: its facts read once, its hazards from them."""
    facts = read_facts(sql)
    return dataclasses.replace(statement, sql=sql, facts=facts, online_step=online_step,
                               hazards=hazards_of(facts, current))


def make_online(plan: Plan, current: CatalogSnapshot) -> Plan:
    relkind = current.fact("relkind")
    created: set[str] = set()
    main, steps, moved_indexes = [], [], set()
    keyed_later: set[str] = set()  # tables whose new unique index or key is made in a step
    constraints_later: set[tuple[str, str]] = set()  # (table, constraint) added in a step
    # An identity needs its column NOT NULL first, and its sequence's options follow it: such a
    # column is made NOT NULL in the transaction.
    identities = {(qualified(s.facts.relation), a.name) for s in plan.statements if s.facts.node == "AlterTableStmt"
                  for a in s.facts.actions if a.subtype == "AT_AddIdentity"}
    for statement in plan.statements:
        facts = statement.facts
        table = qualified(facts.relation)
        online = None
        if facts.node == "IndexStmt" and not facts.concurrent:
            # A new table is empty; a partitioned table cannot be indexed concurrently; a partition's
            # index that its parent's new index attaches must exist before that one is created.
            if table not in created and relkind.get(table) == "r" and facts.name \
                    and statement.origin != ATTACHED_BY_PARENT:
                online = _concurrent_index(statement.sql)
                moved_indexes.add(facts.name)
                if facts.unique:
                    keyed_later.add(table)
        elif facts.node == "AlterTableStmt" and len(facts.actions) == 1:
            action = facts.actions[0]
            if action.subtype == "AT_SetNotNull" and relkind.get(table) == "r" and table not in created \
                    and (table, action.name) not in identities:
                check, validate, steps_sql = _not_null_by_check(table, action.name)
                main.append(_step(statement, check, current, online_step=False))
                steps += [_step(statement, sql, current, online_step=True) for sql in (validate, *steps_sql)]
                continue
            if action.subtype == "AT_ValidateConstraint" and (table not in created or (table, action.name) in constraints_later):
                online = statement.sql
            elif action.subtype in ("AT_AddConstraint", "AT_ReplicaIdentity") and action.using_index in moved_indexes:
                online = statement.sql  # after the index it uses, built concurrently
            elif action.constraint_type == "CONSTR_FOREIGN" and action.references in keyed_later:
                online = statement.sql  # after the unique index or key it references, made in a step
                constraints_later.add((table, action.name))
        created |= facts.creates
        if online is None:
            main.append(statement)
        else:
            steps.append(_step(statement, online, current, online_step=True))
    if not steps:
        return plan
    return dataclasses.replace(plan, statements=tuple(main + steps))


def _not_null_by_check(table: str, column: str) -> tuple[str, str, tuple[str, str]]:
    """SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock. A CHECK (col IS NOT NULL) added
    NOT VALID and validated on its own lets SET NOT NULL skip the scan (PostgreSQL 12+); then it goes."""
    schema, _, relname = table.partition(".")
    name = quote_ident(f"{relname}_{column}_not_null_check"[:63])
    table, col = f"{quote_ident(schema)}.{quote_ident(relname)}", quote_ident(column)
    return (
        f"alter table {table} add constraint {name} check ({col} is not null) not valid;",
        f"alter table {table} validate constraint {name};",
        (f"alter table {table} alter column {col} set not null;",
         f"alter table {table} drop constraint if exists {name};"),
    )


def index_name(statement) -> str | None:
    """The index (schema.name) a CREATE INDEX CONCURRENTLY step builds."""
    facts = statement.facts
    if facts.node == "IndexStmt" and facts.concurrent:
        return f"{qualified(facts.relation).partition('.')[0]}.{facts.name}"
    return None
