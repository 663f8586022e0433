"""Correction for expired partitions: migra drops a partition that left the declared window.

A partition spec says what expiry means. `detach` (the default) keeps every row: the partition is
detached and moved to the archive schema, outside the managed schemas. `drop` keeps migra's DROP,
which the plan marks destructive (with the row count) and apply gates.
"""

from __future__ import annotations

from pglast import ast, enums, parse_sql
from pglast.stream import RawStream

from ...sqltext import quote_ident, quote_part
from ..operations import Operation
from ..statement_facts import operation, qualified
from .base import Correction, DiffContext, InspectedDatabase, dotted

REATTACH = "partitions.reattach-archived"


class PartitionExpiry(Correction):
    name = "partitions.expiry"
    fixes = "migra drops a partition that left the declared window, losing its rows"

    def rewrite(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        # (schema.parent) -> spec, for specs whose expired partitions are detached, not dropped
        detached_parents = {dotted(s.schema, s.table): s for s in context.partition_specs if s.expire == "detach"}
        if not detached_parents:
            return statements
        parent_of = current.snapshot.fact("partition parent")
        out = []
        for statement in statements:
            partition = _dropped_table(statement.facts)
            spec = detached_parents.get(parent_of.get(partition))
            if spec is None:
                out.append(statement)
                continue
            schema, name = partition.split(".", 1)
            parent = f"{quote_ident(spec.schema)}.{quote_ident(spec.table)}"
            archive = quote_ident(spec.archive_schema)
            for sql in (
                f"alter table {parent} detach partition {quote_ident(schema)}.{quote_ident(name)};",
                f"create schema if not exists {archive};",
                f"alter table {quote_ident(schema)}.{quote_ident(name)} set schema {archive};",
            ):
                out.append(operation(sql, self.name))
        return out


def _dropped_table(facts) -> str | None:
    """The one table a DROP TABLE drops (schema.name), else None."""
    if facts.node != "DropStmt" or facts.object_type != "OBJECT_TABLE" or len(facts.objects) != 1:
        return None
    return qualified(facts.objects[0])


def archived_by(statements, target_parents: dict, managed: tuple[str, ...]) -> dict[str, str]:
    """The partitions a plan moves out of the managed schemas (schema.name -> the archive schema),
    from its statements' facts; `target_parents`: the target's fact("partition parent")."""
    return {qualified(s.facts.relation): s.facts.new_schema for s in statements
            if s.facts.node == "AlterObjectSchemaStmt" and qualified(s.facts.relation) in target_parents
            and s.facts.new_schema not in managed}


def reattached(statements: list[Operation], archived: dict[str, str]) -> list[Operation]:
    """The reverse of a plan that archived partitions: each is moved back from its archive schema and
    attached again, with its rows, instead of being created anew and empty (a CREATE that the plan,
    applied again, would then collide with the archived copy on)."""
    out = []
    for statement in statements:
        facts = statement.facts
        partition = qualified(facts.relation) if facts.node == "CreateStmt" and facts.partition_of else None
        if partition not in archived:
            out.append(statement)
            continue
        schema, name = partition.split(".", 1)
        node = parse_sql(statement.sql)[0].stmt
        attach = ast.AlterTableStmt(relation=node.inhRelations[0], objtype=enums.ObjectType.OBJECT_TABLE, cmds=(
            ast.AlterTableCmd(subtype=enums.AlterTableType.AT_AttachPartition,
                              def_=ast.PartitionCmd(name=node.relation, bound=node.partbound, concurrent=False)),))
        out.append(operation(f"ALTER TABLE {quote_part(archived[partition])}.{quote_part(name)} SET SCHEMA "
                             f"{quote_part(schema)};", REATTACH))
        out.append(operation(RawStream()(attach) + ";", REATTACH))
    return out


# This object kind's corrections, in the order they run.
CORRECTIONS = (PartitionExpiry(),)
