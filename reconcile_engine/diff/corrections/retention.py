"""Correction for expired partitions: migra drops a partition that left the declared window.

A partition spec says what expiry means. `detach` (the default) keeps every row: the partition is
detached and moved to the archive schema, outside the managed schemas. `drop` keeps migra's DROP,
which the plan marks destructive (with the row count) and apply gates.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import ObjectType

from ...sqltext import quote_ident
from ..operations import DiffStatement
from .base import DiffContext, Correction, InspectedDatabase, dotted, parsed


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
            spec = detached_parents.get(parent_of.get(self._dropped_table(statement.sql)))
            if spec is None:
                out.append(statement)
                continue
            partition = self._dropped_table(statement.sql)
            schema, name = partition.split(".", 1)
            parent = f"{quote_ident(spec.schema)}.{quote_ident(spec.table)}"
            archive = quote_ident(spec.archive_schema)
            for sql in (
                f"alter table {parent} detach partition {quote_ident(schema)}.{quote_ident(name)};",
                f"create schema if not exists {archive};",
                f"alter table {quote_ident(schema)}.{quote_ident(name)} set schema {archive};",
            ):
                out.append(DiffStatement(sql, self.name))
        return out

    @staticmethod
    def _dropped_table(sql: str) -> str | None:
        nodes = parsed(sql, "DropStmt")
        if len(nodes) != 1 or not isinstance(nodes[0].stmt, ast.DropStmt):
            return None
        node = nodes[0].stmt
        if node.removeType != ObjectType.OBJECT_TABLE or len(node.objects) != 1:
            return None
        parts = [n.sval for n in node.objects[0]]
        return dotted(*(["public"] + parts)[-2:])


# This object kind's corrections, in the order they run.
CORRECTIONS = (PartitionExpiry(),)
