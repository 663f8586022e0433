"""Stage 4 (diff): what every correction is, and the helpers they share.

migra 3.0 is unmaintained and wrong in known ways. Each correction is a small named unit:
  - before_migra(current, desired, context): adjust schemainspect's inspections before migra compares
    them; returns True when it changed anything, or the statements to run before migra's (a list);
  - rewrite(statements, current, desired, context): replace statements migra writes wrongly (parsed with pglast);
  - after_migra(statements, current, desired, context): return statements to add for what migra ignores.
`current` and `desired` are InspectedDatabases: schemainspect's inspection plus our own CatalogSnapshot;
`context` (operations.DiffContext) is what the declared files say beyond the schema. Corrections keep no
state between calls.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import ObjectType

from ...inspection.migra_view import InspectedDatabase
from ..operations import DiffContext
from ...sqltext import may_hold, parse_statements

Side = InspectedDatabase  # the corrections' short name for either database


class Correction:
    name = "correction"
    fixes = ""  # one line: what migra gets wrong

    def before_migra(self, current: Side, desired: Side, context: DiffContext) -> bool | list:
        return False

    def rewrite(self, statements: list, current: Side, desired: Side, context: DiffContext) -> list:
        """statements are diff.DiffStatement; return the new list (the same one when nothing changes)."""
        return statements

    def after_migra(self, statements: list[str], current: Side, desired: Side, context: DiffContext) -> list[str]:
        return []


def dotted(*parts: str) -> str:
    return ".".join(parts)


def parsed(statement: str, kind: str, *more_kinds: str) -> tuple:
    """The statement's parse tree, when it can hold one of the node types or enum values the caller
    looks for (sqltext.may_hold: most of a plan's statements then need no Python tree), else ();
    a statement pglast cannot parse is simply not recognised."""
    if not may_hold(statement, kind, *more_kinds):
        return ()
    return parse_statements(statement) or ()


def dropped_relations(statements: list[str], object_types=None) -> set[str]:
    """Relations (schema.name) that the statements drop, optionally only of the given ObjectTypes."""
    dropped = set()
    for statement in statements:
        for raw in parsed(statement, "DropStmt"):
            node = raw.stmt
            if not isinstance(node, ast.DropStmt):
                continue
            if object_types is not None and node.removeType not in object_types:
                continue
            for names in node.objects or ():
                if not isinstance(names, tuple):  # DROP FUNCTION and friends name objects differently
                    continue
                parts = [n.sval for n in names]
                dropped.add(dotted(*(["public"] + parts)[-2:]))  # migra always schema-qualifies
    return dropped


def recreated_relations(statements: list[str]) -> set[str]:
    """Views and materialized views that migra drops and re-creates because they changed or depend on a change."""
    return dropped_relations(statements, (ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_VIEW))


