"""Corrections for tables: the order new tables are created in, replica identity, the columns a child
table inherits, constraints declared NOT VALID and PostgreSQL 18's NOT NULL constraint names."""

from __future__ import annotations

from ...sqltext import quote_part
from ..statement_facts import qualified
from .base import Correction, DiffContext, Side, dotted, only_action


class CreationOrder(Correction):
    name = "tables.creation-order"
    fixes = ("migra creates new tables in name order, so a column whose type is the row type of a table "
             "created later in the plan fails ('type does not exist')")

    def rewrite(self, statements, current: Side, desired: Side, context: DiffContext):
        statements = list(statements)
        created = {name: s for s in statements if s.facts.node == "CreateStmt" for name in s.facts.creates}
        for position, statement in enumerate(statements):
            if statement.facts.node != "CreateStmt":
                continue
            needed = {n for n in map(qualified, statement.facts.column_types) if n in created}
            later = [created[n] for n in sorted(needed) if statements.index(created[n]) > position]
            if later:  # PostgreSQL allows no cycle of row types, so this ends
                rest = [s for s in statements if s not in later]
                index = rest.index(statement)
                return self.rewrite(rest[:index] + later + rest[index:], current, desired, context)
        return statements


class ReplicaIdentity(Correction):
    name = "tables.replica-identity"
    fixes = "migra ignores REPLICA IDENTITY (FULL, NOTHING, USING INDEX) on tables and partitions"

    def after_migra(self, statements, current: Side, desired: Side, context: DiffContext) -> list[str]:
        before = current.snapshot.fact("replica identity")
        after = desired.snapshot.fact("replica identity")
        names = desired.snapshot.fact("qualified name")
        # A new table starts with the default; an existing one keeps what it has.
        return [f"alter table {names[t]} replica identity {identity};"
                for t, identity in sorted(after.items()) if identity != before.get(t, "default")]


class InheritedColumns(Correction):
    name = "tables.inherited-columns"
    fixes = ("migra declares every column of a child table (INHERITS) in its CREATE TABLE, so the columns "
             "it inherits become its own as well (attislocal)")

    def before_migra(self, current: Side, desired: Side, context: DiffContext) -> bool:
        changed = False
        for side in (current, desired):
            inherited = side.snapshot.fact("inherited column")
            if not inherited:
                continue
            for table in side.inspected.tables.values():
                if not table.is_inheritance_child_table:
                    continue
                kept = {name: column for name, column in table.columns.items()
                        if dotted(table.schema, table.name, name) not in inherited}
                if len(kept) != len(table.columns):
                    table.columns = type(table.columns)(kept)
                    changed = True
        return changed


class NotValidConstraints(Correction):
    name = "constraints.not-valid-kept"
    fixes = ("migra adds a CHECK or foreign key NOT VALID and then validates it, also when the declared "
             "constraint is NOT VALID: the rows it was meant to leave unchecked are checked, and it fails")

    def rewrite(self, statements, current: Side, desired: Side, context: DiffContext):
        constraints = desired.snapshot.of_kind("constraint")
        out = []
        for statement in statements:
            facts = statement.facts
            action = only_action(facts)
            if action is not None and action.subtype == "AT_ValidateConstraint" and \
                    "NOT VALID" in (constraints.get(f"{qualified(facts.relation)}.{action.name}") or ""):
                continue
            out.append(statement)
        return out


class NotNullNames(Correction):
    name = "constraints.not-null-names"
    fixes = ("migra ignores the names PostgreSQL 18 gives NOT NULL constraints: a declared name, or the "
             "old name a renamed column keeps, differs from the target's")

    def after_migra(self, statements, current: Side, desired: Side, context: DiffContext) -> list[str]:
        before = current.snapshot.fact("not null name")
        after = desired.snapshot.fact("not null name")
        names = desired.snapshot.fact("qualified name")
        # A partition's names follow how it became one, and an inherited column's its parent's: the
        # snapshot does not compare those.
        partitions, inherited = desired.snapshot.fact("partition parent"), desired.snapshot.fact("inherited column")
        out = []
        for key, wanted in sorted(after.items()):
            table, _, column = key.rpartition(".")
            if table in partitions or key in inherited:
                continue
            # A NOT NULL the plan makes gets PostgreSQL's default name (<table>_<column>_not_null).
            made = before.get(key) or f"{table.rpartition('.')[2]}_{column}_not_null"[:63]
            if made != wanted and table in names:
                out.append(f"alter table {names[table]} rename constraint {quote_part(made)} to {quote_part(wanted)};")
        return out


# This object kind's corrections, in the order they run.
CORRECTIONS = (CreationOrder(), InheritedColumns(), NotValidConstraints(), ReplicaIdentity(), NotNullNames())
