"""Corrections for partitioned tables: keys, indexes and constraints that PostgreSQL propagates."""

from __future__ import annotations

import dataclasses

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ConstrType
from pglast.stream import RawStream

from . import Correction, Side, dotted, parsed


class InheritedPartitionObjects(Correction):
    name = "partitions.inherited-objects"
    fixes = ("migra re-creates each partition's copy of its parent's indexes and constraints, "
             "which PostgreSQL already propagates ('already exists')")

    def before_migra(self, current: Side, desired: Side) -> bool:
        changed = False
        for side in (current, desired):
            attached = side.snapshot.fact("attached index")
            inherited = side.snapshot.fact("inherited constraint")
            i = side.inspected
            indexes = {k: v for k, v in i.indexes.items() if dotted(v.schema, v.name) not in attached}
            constraints = {
                k: v for k, v in i.constraints.items()
                if dotted(v.schema, v.table_name, v.name) not in inherited
            }
            changed |= len(indexes) != len(i.indexes) or len(constraints) != len(i.constraints)
            i.indexes, i.constraints = indexes, constraints
        return changed


def _recursive_index_definition(definition: str) -> str:
    """CREATE INDEX ... ON ONLY parent -> ON parent, so PostgreSQL builds and attaches the partitions' indexes."""
    (raw,) = parse_sql(definition)
    raw.stmt.relation.inh = True
    return RawStream()(raw.stmt)


class PartitionedParentKeys(Correction):
    name = "partitions.parent-keys"
    fixes = ("migra builds a partitioned table's indexes ON ONLY the parent (left invalid) and adds its "
             "primary key USING INDEX, which PostgreSQL refuses on a partitioned table")

    def before_migra(self, current: Side, desired: Side) -> bool:
        changed = False
        for side in (current, desired):
            relkind = side.snapshot.fact("relkind")
            i = side.inspected
            partitioned = {k for k, kind in relkind.items() if kind == "p"}
            key_indexes = set()
            for constraint in i.constraints.values():
                if dotted(constraint.schema, constraint.table_name) in partitioned and constraint.index is not None:
                    key_indexes.add(dotted(constraint.schema, constraint.name))
                    # Without an index, migra adds the constraint from its definition, which recurses.
                    constraint.index = None
                    changed = True
            kept = {}
            for key, index in i.indexes.items():
                if dotted(index.schema, index.name) in key_indexes:
                    continue
                if dotted(index.schema, index.table_name) in partitioned:
                    index.definition = _recursive_index_definition(index.definition)
                    changed = True
                kept[key] = index
            i.indexes = kept
        return changed


class PartitionedForeignKeys(Correction):
    name = "partitions.foreign-keys"
    fixes = ("migra adds foreign keys NOT VALID then validates them: PostgreSQL refuses NOT VALID on a "
             "partitioned table, and (15) leaves the per-partition copies of a key that references a "
             "partitioned table unvalidated; add such keys valid in one step")

    def rewrite(self, statements, current: Side, desired: Side):
        partitioned = {k for k, kind in desired.snapshot.fact("relkind").items() if kind == "p"}
        out, made_valid = [], set()
        for statement in statements:
            nodes = parsed(statement.sql)
            node = nodes[0].stmt if len(nodes) == 1 else None
            if not isinstance(node, ast.AlterTableStmt) or len(node.cmds) != 1:
                out.append(statement)
                continue
            table = _table_name(node.relation)
            cmd = node.cmds[0]
            if (cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.contype == ConstrType.CONSTR_FOREIGN
                    and cmd.def_.skip_validation
                    and (table in partitioned or _table_name(cmd.def_.pktable) in partitioned)):
                cmd.def_.skip_validation = False
                cmd.def_.initially_valid = True
                made_valid.add((table, cmd.def_.conname))
                out.append(dataclasses.replace(statement, sql=RawStream()(node) + ";"))
            elif cmd.subtype == AlterTableType.AT_ValidateConstraint and (table, cmd.name) in made_valid:
                continue
            else:
                out.append(statement)
        return out


def _table_name(rangevar) -> str:
    return dotted(rangevar.schemaname or "public", rangevar.relname)


class PartitionTriggers(Correction):
    name = "partitions.triggers"
    fixes = "migra re-creates on each partition the row triggers PostgreSQL clones from the parent"


class PartitionAttachment(Correction):
    name = "partitions.attachment"
    fixes = "migra cannot attach an existing table as a partition, nor detach one"
