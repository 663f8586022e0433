"""Partition lifecycle on the target: what the declared window needs that the target lacks, rows
stranded in a DEFAULT partition, and `maintain`'s additive step (cron: create upcoming partitions).

Reads and writes the target only through the connection it is given.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..declared.partition_specs import Partition, PartitionSpec, partitions_for, period_start
from ..inspection.snapshot import CatalogSnapshot
from ..sqltext import quote_ident, quote_literal


@dataclasses.dataclass(frozen=True)
class MissingPartition:
    spec: PartitionSpec
    partition: Partition

    def describe(self) -> str:
        return (f"partition {self.spec.schema}.{self.partition.name} missing, "
                f"needed from {self.partition.start.isoformat()}")


@dataclasses.dataclass(frozen=True)
class StrandedRows:
    spec: PartitionSpec
    partition: Partition
    rows: int

    def describe(self) -> str:
        return (f"{self.rows} row(s) in {self.spec.schema}.{self.spec.default_partition_name} belong in "
                f"{self.spec.schema}.{self.partition.name} ({self.partition.start} to {self.partition.end})")


def _qualified(spec: PartitionSpec, name: str) -> str:
    return f"{quote_ident(spec.schema)}.{quote_ident(name)}"


def missing_partitions(specs, as_of: dt.date, target: CatalogSnapshot, upcoming_only: bool = False) -> list[MissingPartition]:
    """Declared partitions the target does not have (only the as-of period and later, if upcoming_only)."""
    missing = []
    for spec in specs:
        if ("table", f"{spec.schema}.{spec.table}") not in target.objects:
            continue  # the parent itself is missing: the ordinary diff reports that
        current = period_start(spec, as_of)
        for partition in partitions_for(spec, as_of):
            if upcoming_only and partition.start < current:
                continue
            if ("table", f"{spec.schema}.{partition.name}") not in target.objects:
                missing.append(MissingPartition(spec, partition))
    return missing


def stranded_rows(cur, specs, as_of: dt.date, target: CatalogSnapshot) -> list[StrandedRows]:
    """Rows in a DEFAULT partition that a declared partition should hold."""
    found = []
    for spec in specs:
        if not spec.default_partition or ("table", f"{spec.schema}.{spec.default_partition_name}") not in target.objects:
            continue
        for partition in partitions_for(spec, as_of):
            cur.execute(
                f"SELECT count(*) FROM ONLY {_qualified(spec, spec.default_partition_name)} "
                f"WHERE {quote_ident(spec.column)} >= %s AND {quote_ident(spec.column)} < %s",
                (partition.start, partition.end),
            )
            rows = cur.fetchone()[0]
            if rows:
                found.append(StrandedRows(spec, partition, rows))
    return found


def _upper_bound(bound: str) -> dt.date | None:
    """The TO date of 'FOR VALUES FROM (...) TO (...)', read with PostgreSQL's parser; None for DEFAULT."""
    from pglast import parse_sql

    node = parse_sql(f"CREATE TABLE x PARTITION OF y {bound}")[0].stmt.partbound
    if node.is_default or len(node.upperdatums) != 1:
        return None
    try:
        # A date, or a timestamp at midnight: a partition key of type timestamp (Prisma's TIMESTAMP(3)).
        bound = dt.datetime.fromisoformat(node.upperdatums[0].val.sval)
    except (AttributeError, ValueError):
        return None
    return bound.date() if bound.time() == dt.time() else None


def expired_partitions(specs, as_of: dt.date, target: CatalogSnapshot,
                       auto_detach_only: bool = True) -> list[tuple[PartitionSpec, str]]:
    """(spec, partition name) of attached partitions wholly before the declared window, for specs
    that let maintain detach them (for every spec, unless auto_detach_only)."""
    parent_of = target.fact("partition parent")
    bounds = target.fact("partition bound")
    expired = []
    for spec in specs:
        if auto_detach_only and not spec.auto_detach:
            continue
        window_start = partitions_for(spec, as_of)[0].start
        parent = f"{spec.schema}.{spec.table}"
        for partition, its_parent in sorted(parent_of.items()):
            upper = _upper_bound(bounds.get(partition, "DEFAULT")) if its_parent == parent else None
            if upper is not None and upper <= window_start:
                expired.append((spec, partition.split(".", 1)[1]))
    return expired


def moved_by_the_window(specs, as_of: dt.date, target: CatalogSnapshot) -> set[str]:
    """"schema.name" of the partitions in which the target may differ from the declared state only
    because the window moved with the as-of date: the current and upcoming ones it lacks (maintain
    creates them) and the attached ones wholly before the window (expiring them is for a reviewed
    plan, or maintain with auto_detach)."""
    moved = {f"{m.spec.schema}.{m.partition.name}"
             for m in missing_partitions(specs, as_of, target, upcoming_only=True)}
    return moved | {f"{spec.schema}.{name}" for spec, name in expired_partitions(specs, as_of, target, False)}


def detach_statements(spec: PartitionSpec, name: str) -> list[str]:
    """Detach an expired partition and move it out of the managed schemas: every row is kept."""
    archive = quote_ident(spec.archive_schema)
    return [
        f"ALTER TABLE {_qualified(spec, spec.table)} DETACH PARTITION {_qualified(spec, name)}",
        f"CREATE SCHEMA IF NOT EXISTS {archive}",
        f"ALTER TABLE {_qualified(spec, name)} SET SCHEMA {archive}",
    ]


def create_partition_statements(cur, missing: MissingPartition, target: CatalogSnapshot) -> list[str]:
    """CREATE the partition; if a DEFAULT partition holds rows of its range, move them in the same
    transaction (PostgreSQL would otherwise refuse to create it), so nothing fails half-way."""
    spec, partition = missing.spec, missing.partition
    parent = _qualified(spec, spec.table)
    create = (f"CREATE TABLE {_qualified(spec, partition.name)} PARTITION OF {parent} "
              f"FOR VALUES FROM ({quote_literal(partition.start.isoformat())}) "
              f"TO ({quote_literal(partition.end.isoformat())})")
    if not spec.default_partition or ("table", f"{spec.schema}.{spec.default_partition_name}") not in target.objects:
        return [create]
    column = quote_ident(spec.column)
    in_range = (f"{column} >= {quote_literal(partition.start.isoformat())} "
                f"AND {column} < {quote_literal(partition.end.isoformat())}")
    cur.execute(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
        (parent,),
    )
    columns = cur.fetchone()[0]
    default = _qualified(spec, spec.default_partition_name)
    holding = quote_ident(f"reconcile_moving_{partition.name}")
    return [
        f"CREATE TEMP TABLE {holding} ON COMMIT DROP AS SELECT {columns} FROM ONLY {default} WHERE {in_range}",
        f"DELETE FROM ONLY {default} WHERE {in_range}",
        create,
        f"INSERT INTO {parent} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM {holding}",
    ]
