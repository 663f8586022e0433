"""Corrections for materialized views: migra re-creates a changed one but forgets its indexes."""

from __future__ import annotations

from .base import Correction, DiffContext, Side, recreated_relations


def _created_index_names(operations) -> set[str]:
    return {o.facts.name for o in operations if o.facts.node == "IndexStmt" and o.facts.name}


class MaterializedViewIndexes(Correction):
    name = "matviews.indexes"
    fixes = "migra drops and re-creates a changed materialized view without re-creating its indexes"

    def after_migra(self, statements, current: Side, desired: Side, context: DiffContext) -> list[str]:
        recreated = recreated_relations(statements)
        if not recreated:
            return []
        index_table = desired.snapshot.fact("index table")
        indexes = desired.snapshot.of_kind("index")
        already = _created_index_names(statements)
        added = []
        for index, table in sorted(index_table.items()):
            if table in recreated and index.split(".", 1)[1] not in already:
                added.append(indexes[index].split(" (attached to ")[0] + ";")
        return added


# This object kind's corrections, in the order they run.
CORRECTIONS = (MaterializedViewIndexes(),)
