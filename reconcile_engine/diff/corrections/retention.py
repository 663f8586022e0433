"""Correction for expired partitions: migra drops a partition that left the declared window.

A partition spec says what expiry means. `detach` (the default) keeps every row: the partition is
detached and moved to the archive schema, outside the managed schemas. `drop` keeps migra's DROP,
which the plan marks destructive (with the row count) and apply gates.
"""

from __future__ import annotations

from ...sqltext import quote_ident
from ..statement_facts import operation, qualified
from .base import Correction, DiffContext, InspectedDatabase, dotted


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


# This object kind's corrections, in the order they run.
CORRECTIONS = (PartitionExpiry(),)
