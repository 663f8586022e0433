"""Stage 4 (diff): which declared renames (declared/renames.py) the target needs, as operations that run
before everything else the plan does. A rename whose old name the target lacks is stale: ignored, with
a note, so a directive left in a file after its plan ran does nothing."""

from __future__ import annotations

import dataclasses

from ..declared.renames import Rename
from ..inspection.snapshot import CatalogSnapshot
from .operations import Operation
from .statement_facts import operation

ORIGIN = "renames"
_RELATIONS = ("table", "view", "materialized view", "index")


@dataclasses.dataclass(frozen=True)
class Renames:
    applied: tuple[Rename, ...]  # in the order they run: relations first, then what belongs to tables
    notes: tuple[str, ...]  # stale or clashing directives, ignored

    @property
    def operations(self) -> list[Operation]:
        return [operation(r.statement(), ORIGIN) for r in self.applied]

    @property
    def reverse_operations(self) -> list[Operation]:
        """Back to the old names: what belongs to tables first, then the relations (the reverse order)."""
        return [operation(_inverse(r).statement(), ORIGIN) for r in reversed(self.applied)]


def _inverse(rename: Rename) -> Rename:
    return dataclasses.replace(rename, old=rename.new, new=rename.old)


def needed_renames(renames: tuple[Rename, ...], target: CatalogSnapshot) -> Renames:
    """The renames the target needs: its object has the old name, and nothing has the new one yet."""
    applied, notes = [], []
    table_renamed = {}  # new table name -> old, for the columns, constraints and policies of a renamed table
    for rename in sorted(renames, key=lambda r: r.kind not in _RELATIONS):
        kind = rename.kind  # the snapshot's kinds have the same names
        if rename.kind in _RELATIONS:
            old_key, new_key = rename.old, rename.new
        else:
            on_target = table_renamed.get(rename.table, rename.table)
            old_key, new_key = f"{on_target}.{rename.old}", f"{on_target}.{rename.new}"
        has_old, has_new = (kind, old_key) in target.objects, (kind, new_key) in target.objects
        if has_old and not has_new:
            applied.append(rename)
            if rename.kind == "table":
                table_renamed[rename.new] = rename.old
        elif not has_old and has_new:
            notes.append(f"{rename.where}: renamed from {rename.old}: no {rename.kind} {old_key} on the target, "
                         f"which has {new_key} (renamed already?): ignored; the directive can go")
        elif not has_old:
            notes.append(f"{rename.where}: renamed from {rename.old}: no {rename.kind} {old_key} on the target; "
                         f"ignored")
        else:
            notes.append(f"{rename.where}: renamed from {rename.old}: the target has both {old_key} and "
                         f"{new_key}; not renamed (the plan compares them as they are)")
    return Renames(tuple(applied), tuple(notes))
