"""Corrections for functions: where their drops go among the other drops of a plan."""

from __future__ import annotations

from .base import Correction, DiffContext, Side

_FUNCTION_KINDS = frozenset({"OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_AGGREGATE", "OBJECT_ROUTINE"})
# What may use a function and is removed by its own statement: an index or a view over it, a trigger, a
# policy, a table; a default, check, generated column or a column's type (USING) in an ALTER TABLE.
_USERS_DROPPED = frozenset({"OBJECT_INDEX", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_TABLE", "OBJECT_TRIGGER",
                            "OBJECT_POLICY"})
_USERS_ALTERED = frozenset({"AT_DropConstraint", "AT_DropColumn", "AT_ColumnDefault", "AT_AlterColumnType",
                            "AT_DropExpression"})


def _drops_a_function(operation) -> bool:
    return operation.facts.node == "DropStmt" and operation.facts.object_type in _FUNCTION_KINDS


def _removes_a_user(operation) -> bool:
    facts = operation.facts
    if facts.node == "DropStmt":
        return facts.object_type in _USERS_DROPPED
    return facts.node == "AlterTableStmt" and any(action.subtype in _USERS_ALTERED for action in facts.actions)


class DropsAfterTheirUsers(Correction):
    name = "functions.drops-after-users"
    fixes = ("migra drops functions with the views, before the indexes, defaults and checks that call them "
             "are dropped, so PostgreSQL refuses ('other objects depend on it')")

    def rewrite(self, statements, current: Side, desired: Side, context: DiffContext):
        drops = [s for s in statements if _drops_a_function(s)]
        if not drops:
            return statements
        rest = [s for s in statements if not _drops_a_function(s)]
        users = [position for position, s in enumerate(rest) if _removes_a_user(s)]
        first_drop = statements.index(drops[0])
        # Functions drop in migra's order (dependents first), right after the last removal of something
        # that may call them, and never earlier than migra put them (types they take drop after them).
        after = max(users[-1] + 1 if users else 0,
                    sum(1 for s in statements[:first_drop] if not _drops_a_function(s)))
        moved = rest[:after] + drops + rest[after:]
        return statements if moved == list(statements) else moved


# This object kind's corrections, in the order they run.
CORRECTIONS = (DropsAfterTheirUsers(),)
