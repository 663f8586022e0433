"""Corrections for range types: migra writes nothing for them (schemainspect does not read pg_range)."""

from __future__ import annotations

from ...inspection.migra_view import key_of
from ..statement_facts import operation
from .base import Correction, DiffContext, Side


def _ranges(side: Side) -> dict[str, str]:
    """Each range type ("schema.name") with its options, as our snapshot reads them from pg_range."""
    return side.snapshot.of_kind("range type")


class RangeTypes(Correction):
    name = "types.range"
    fixes = ("migra neither creates, changes nor drops a range type: CREATE TYPE ... AS RANGE before the "
             "tables that use one, DROP TYPE after them")

    def before_migra(self, current: Side, desired: Side, context: DiffContext) -> list:
        before, after = _ranges(current), _ranges(desired)
        changed = [key for key in sorted(after) if key in before and before[key] != after[key]]
        # A changed one is made again (its columns, if any, make that fail in the rehearsal: said there).
        return ([operation(f"drop type {key_of(key)};", self.name) for key in changed]
                + [operation(f"create type {key_of(key)} as range ({after[key]});", self.name)
                   for key in sorted(after) if before.get(key) != after[key]])

    def after_migra(self, statements, current: Side, desired: Side, context: DiffContext) -> list[str]:
        after = _ranges(desired)
        return [f"drop type {key_of(key)};" for key in sorted(_ranges(current)) if key not in after]


CORRECTIONS = (RangeTypes(),)
