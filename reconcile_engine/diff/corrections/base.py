"""Stage 4 (diff): what every correction is, and the helpers they share.

migra 3.0 is unmaintained and wrong in known ways. Each correction is a small named unit:
  - before_migra(current, desired, context): adjust schemainspect's inspections before migra compares
    them; returns True when it changed anything, or the statements to run before migra's (a list);
  - rewrite(statements, current, desired, context): replace operations migra writes wrongly (by their facts);
  - after_migra(statements, current, desired, context): return SQL to add for what migra ignores.
`current` and `desired` are InspectedDatabases: schemainspect's inspection plus our own CatalogSnapshot;
`context` (operations.DiffContext) is what the declared files say beyond the schema. Corrections keep no
state between calls.
"""

from __future__ import annotations

from ...inspection.migra_view import InspectedDatabase
from ..operations import DiffContext, Operation
from ..statement_facts import qualified

Side = InspectedDatabase  # the corrections' short name for either database


class Correction:
    name = "correction"
    fixes = ""  # one line: what migra gets wrong

    def before_migra(self, current: Side, desired: Side, context: DiffContext) -> bool | list:
        return False

    def rewrite(self, statements: list[Operation], current: Side, desired: Side, context: DiffContext) -> list:
        """Return the new list of operations (the same list when nothing changes)."""
        return statements

    def after_migra(self, statements: list[Operation], current: Side, desired: Side, context: DiffContext) -> list[str]:
        return []


def only_action(facts):
    """The one subcommand of an ALTER TABLE of one subcommand (migra writes them so), else None."""
    return facts.actions[0] if facts.node == "AlterTableStmt" and len(facts.actions) == 1 else None


def dotted(*parts: str) -> str:
    return ".".join(parts)


_RELATIONS = ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_INDEX", "OBJECT_SEQUENCE",
              "OBJECT_FOREIGN_TABLE")


def dropped_relations(operations, object_types=_RELATIONS) -> set[str]:
    """Relations (schema.name) that the operations drop, of the given ObjectTypes (by their facts)."""
    return {qualified(name) for operation in operations if operation.facts.node == "DropStmt"
            and operation.facts.object_type in object_types for name in operation.facts.objects}


def recreated_relations(operations) -> set[str]:
    """Views and materialized views that migra drops and re-creates because they changed or depend on a change."""
    return dropped_relations(operations, ("OBJECT_MATVIEW", "OBJECT_VIEW"))
