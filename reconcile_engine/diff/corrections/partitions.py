"""Corrections for partitioned tables: keys, indexes and constraints that PostgreSQL propagates."""

from __future__ import annotations

from pglast import parse_sql
from pglast.stream import RawStream

from ...sqltext import quote_part
from ..operations import Operation
from ..statement_facts import operation, qualified
from .base import Correction, DiffContext, Side, dotted, only_action


class SubPartitionedPartitions(Correction):
    name = "partitions.sub-partitioned"
    fixes = ("a partition that is itself partitioned is written 'create table ... (columns) partition by FOR "
             "VALUES ...': schemainspect keeps its bounds where the partition key belongs and loses the key")

    def before_migra(self, current: Side, desired: Side, context: DiffContext) -> bool:
        changed = False
        for side in (current, desired):
            keys, bounds = side.snapshot.fact("partition key"), side.snapshot.fact("partition bound")
            for table in side.inspected.tables.values():
                name = dotted(table.schema, table.name)
                if table.relationtype == "p" and table.parent_table and name in keys and name in bounds:
                    # Seen as the partition it is, schemainspect writes it PARTITION OF its parent with
                    # its bounds, and its own key after them: the order PostgreSQL's grammar takes.
                    table.relationtype = "r"
                    table.partition_def = f"{bounds[name]} PARTITION BY {keys[name]}"
                    changed |= side is desired
        return changed


class InheritedPartitionObjects(Correction):
    name = "partitions.inherited-objects"
    fixes = ("migra re-creates each partition's copy of its parent's indexes and constraints, "
             "which PostgreSQL already propagates ('already exists')")

    def before_migra(self, current: Side, desired: Side, context: DiffContext) -> bool:
        changed = False
        # A partition being detached keeps its copies as its own after DETACH: migra must see them
        # on the current side, so that it drops those the declared table does not have.
        before = current.snapshot.fact("partition parent")
        after = desired.snapshot.fact("partition parent")
        detached = {t for t, parent in before.items()
                    if after.get(t) != parent and ("table", t) in desired.snapshot.objects}
        # A partition's own index that the declared state attaches to its parent's index: CREATE INDEX on
        # the parent attaches a matching index it finds on a partition, so migra must not drop it first.
        definitions = [{i: d.split(" (attached to ")[0] for i, d in side.snapshot.of_kind("index").items()}
                       for side in (current, desired)]
        to_attach = {i: p for i, p in desired.snapshot.fact("attached index").items()
                     if i not in current.snapshot.fact("attached index")
                     and definitions[0].get(i) is not None and definitions[0].get(i) == definitions[1].get(i)}
        for side in (current, desired):
            attached = {i: p for i, p in side.snapshot.fact("attached index").items()
                        if side is desired or side.snapshot.fact("index table").get(i) not in detached}
            if side is current:
                attached.update(to_attach)
            inherited = {c: v for c, v in side.snapshot.fact("inherited constraint").items()
                         if side is desired or c.rsplit(".", 1)[0] not in detached}
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

    def before_migra(self, current: Side, desired: Side, context: DiffContext) -> bool:
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

    def rewrite(self, statements, current: Side, desired: Side, context: DiffContext):
        partitioned = {k for k, kind in desired.snapshot.fact("relkind").items() if kind == "p"}
        out, made_valid = [], set()
        for statement in statements:
            facts = statement.facts
            action = only_action(facts)
            table = qualified(facts.relation)
            if (action is not None and action.subtype == "AT_AddConstraint" and action.constraint_type == "CONSTR_FOREIGN"
                    and action.not_valid and (table in partitioned or action.references in partitioned)):
                made_valid.add((table, action.name))
                out.append(operation(_validated(statement.sql), self.name))
            elif action is not None and action.subtype == "AT_ValidateConstraint" and (table, action.name) in made_valid:
                continue
            else:
                out.append(statement)
        return out


def _validated(sql: str) -> str:
    """ADD CONSTRAINT ... NOT VALID as a constraint added valid: rendered from pglast's tree of this
    one statement (its facts said to rewrite it; rendering needs the tree)."""
    node = parse_sql(sql)[0].stmt
    constraint = node.cmds[0].def_
    constraint.skip_validation = False
    constraint.initially_valid = True
    return RawStream()(node) + ";"


class PartitionTriggers(Correction):
    name = "partitions.triggers"
    fixes = "migra re-creates on each partition the row triggers PostgreSQL clones from the parent"

    def before_migra(self, current: Side, desired: Side, context: DiffContext) -> bool:
        changed = False
        for side in (current, desired):
            cloned = side.snapshot.fact("cloned trigger")
            kept = {k: t for k, t in side.inspected.triggers.items()
                    if dotted(t.schema, t.table_name, t.name) not in cloned}
            changed |= len(kept) != len(side.inspected.triggers)
            side.inspected.triggers = kept
        return changed


class PartitionAttachment(Correction):
    name = "partitions.attachment"
    fixes = ("migra's attach statement is broken (schemainspect has no partition_spec, and names the tables "
             "the wrong way round) and it ignores changed bounds: detach first, attach last, keeping every row")

    @staticmethod
    def _moving(current: Side, desired: Side) -> list[tuple[str, str | None, str | None]]:
        """(table, its parent now, its declared parent) for each table that changes parent or bounds
        (all detached before any is attached again, so that new bounds may overlap old ones)."""
        before = current.snapshot.fact("partition parent")
        after = desired.snapshot.fact("partition parent")
        bounds_before = current.snapshot.fact("partition bound")
        bounds_after = desired.snapshot.fact("partition bound")
        return [(t, before.get(t), after.get(t)) for t in sorted(set(before) | set(after))
                if (before.get(t) != after.get(t) or bounds_before.get(t) != bounds_after.get(t))
                and ("table", t) in current.snapshot.objects and ("table", t) in desired.snapshot.objects]

    def before_migra(self, current: Side, desired: Side, context: DiffContext):
        moving = self._moving(current, desired)
        names = {**current.snapshot.fact("qualified name"), **desired.snapshot.fact("qualified name")}
        detach = [operation(f"alter table {names[parent]} detach partition {names[table]};", self.name)
                  for table, parent, _ in moving if parent]
        for table, _, _ in moving:
            # Let migra see the table as unmoved: it would write broken statements otherwise.
            key = next(k for k, v in desired.inspected.tables.items() if dotted(v.schema, v.name) == table)
            was = next(v for v in current.inspected.tables.values() if dotted(v.schema, v.name) == table)
            desired.inspected.tables[key].parent_table = was.parent_table
            desired.inspected.tables[key].partition_def = was.partition_def
        return detach or bool(moving)  # detaching first: before migra's statements

    def after_migra(self, statements, current: Side, desired: Side, context: DiffContext) -> list[str]:
        names = {**current.snapshot.fact("qualified name"), **desired.snapshot.fact("qualified name")}
        bounds = desired.snapshot.fact("partition bound")
        return [f"alter table {names[parent]} attach partition {names[table]} {bounds[table]};"
                for table, _, parent in self._moving(current, desired) if parent]


class AttachedIndexNames(Correction):
    name = "partitions.attached-index-names"
    fixes = ("an index created on a partitioned table makes each partition's own index under a generated "
             "name (p_2025_id_idx) where none matches: the declared partitions' index names are lost")

    def rewrite(self, statements, current: Side, desired: Side, context: DiffContext):
        children: dict[str, list[str]] = {}
        for child, parent in sorted(desired.snapshot.fact("attached index").items()):
            if ("index", child) not in current.snapshot.objects:
                children.setdefault(parent, []).append(child)
        if not children:
            return statements
        definitions = {i: d.split(" (attached to ")[0] for i, d in desired.snapshot.of_kind("index").items()}

        def made_first(index: str) -> list[Operation]:
            """The declared partitions' indexes, deepest first: the parent's CREATE INDEX then attaches them."""
            return [op for child in children.get(index, ()) for op in
                    made_first(child) + [operation(_recursive_index_definition(definitions[child]) + ";", self.name)]]

        out = []
        for statement in statements:
            facts = statement.facts
            if facts.node == "IndexStmt" and facts.name:
                schema = qualified(facts.relation).split(".", 1)[0]
                out += made_first(dotted(schema, facts.name))
            out.append(statement)
        return out if len(out) != len(statements) else statements


def _not_null(column_definition: str | None) -> bool | None:
    """From the snapshot's column definition (type, collation, 'not null [named ...]', ..., default last)."""
    if column_definition is None:
        return None
    return " not null" in " " + column_definition.split(" default ", 1)[0]


class PartitionColumnsNotNull(Correction):
    name = "partitions.column-not-null"
    fixes = ("migra does not compare a partition's columns, so NOT NULL declared on a partition's column "
             "(and not on its parent's) is neither added nor dropped")

    def after_migra(self, statements, current: Side, desired: Side, context: DiffContext) -> list[str]:
        parents = desired.snapshot.fact("partition parent")
        parents_before = current.snapshot.fact("partition parent")
        before, after = current.snapshot.of_kind("column"), desired.snapshot.of_kind("column")
        names = desired.snapshot.fact("qualified name")
        out = []
        for column, definition in sorted(after.items()):
            table, name = column.rsplit(".", 1)
            parent = parents.get(table)
            if parent is None:
                continue
            wanted = _not_null(definition)
            parent_after = _not_null(after.get(dotted(parent, name)))
            parent_before = _not_null(before.get(dotted(parent, name)))
            had = _not_null(before.get(column)) if parents_before.get(table) == parent else None
            # A new partition (or a newly attached one) takes its parent's; so does one whose parent's changes.
            will_have = parent_after if had is None or parent_before != parent_after else had
            if wanted != will_have:
                out.append(f"alter table {names[table]} alter column {quote_part(name)} "
                           f"{'set' if wanted else 'drop'} not null;")
        return out


class PartitionsDroppedFirst(Correction):
    name = "partitions.drop-order"
    fixes = ("migra drops a partitioned table before its partitions, which went with it: the partitions' "
             "own DROPs then fail ('does not exist'), so a plan that removes one, or the reverse of a plan "
             "that creates one, cannot run")

    def rewrite(self, statements: list[Operation], current: Side, desired: Side, context: DiffContext) -> list:
        parent_of = current.snapshot.fact("partition parent")
        dropped = {table: statement for statement in statements for table in _dropped_tables(statement)}

        def ancestors(table: str):
            while (table := parent_of.get(table)) is not None:
                yield table

        # A partition whose parent (or its parent's parent) is dropped too: dropped just before it.
        early = {table: [a for a in ancestors(table) if a in dropped] for table in dropped}
        early = {table: found[-1] for table, found in early.items() if found}  # the topmost dropped ancestor
        if not early:
            return statements
        depth = {table: sum(1 for _ in ancestors(table)) for table in early}
        under: dict[str, list[str]] = {}  # each dropped top: its dropped partitions, deepest first
        for table in sorted(early, key=lambda t: (-depth[t], t)):
            under.setdefault(early[table], []).append(table)
        moved = {id(dropped[table]) for table in early}
        reordered = []
        for statement in statements:
            if id(statement) in moved:
                continue
            tables = _dropped_tables(statement)
            # Looked up per dropped table, not scanned: the reverse of a first plan drops every table.
            before = sorted((t for top in tables for t in under.get(top, ())), key=lambda t: (-depth[t], t))
            reordered += [dropped[t] for t in before] + [statement]
        return reordered


def _dropped_tables(statement: Operation) -> list[str]:
    facts = statement.facts
    if facts.node != "DropStmt" or facts.object_type != "OBJECT_TABLE":
        return []
    return [qualified(name) for name in facts.objects]


# This object kind's corrections, in the order they run.
CORRECTIONS = (SubPartitionedPartitions(), InheritedPartitionObjects(), PartitionedParentKeys(), PartitionedForeignKeys(), PartitionTriggers(),
               PartitionAttachment(), AttachedIndexNames(), PartitionColumnsNotNull(), PartitionsDroppedFirst())
