"""Corrections for enum types: migra re-creates an enum to add a value; PostgreSQL can add it in place."""

from __future__ import annotations

from ...sqltext import quote_literal
from ..statement_facts import operation
from .base import Correction, DiffContext, InspectedDatabase


def _additions(old: list[str], new: list[str]) -> list[tuple[str, str, str]] | None:
    """(label, BEFORE/AFTER, neighbour) for each added label, when `new` only inserts into `old`
    (same order, nothing removed); None when it cannot be done in place."""
    if [label for label in new if label in old] != old:
        return None
    out = []
    for position, label in enumerate(new):
        if label in old:
            continue
        following = next((n for n in new[position + 1:] if n in old), None)
        if following is not None:
            out.append((label, "BEFORE", following))
        else:
            out.append((label, "AFTER", new[position - 1]) if position else (label, "", ""))
    return out


class EnumValues(Correction):
    name = "enums.add-value"
    fixes = ("migra renames, re-creates and re-casts an enum type to add a value (and breaks on a label "
             "with a quote): ALTER TYPE ... ADD VALUE instead, committed before anything uses it")

    def before_migra(self, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        added = []
        for key, enum in desired.inspected.enums.items():
            old = current.inspected.enums.get(key)
            if old is None or list(old.elements) == list(enum.elements):
                continue
            additions = _additions(list(old.elements), list(enum.elements))
            if additions is None:
                continue  # a removal or reorder: only re-creating the type can do it; migra's way stays
            for label, where, neighbour in additions:
                place = f" {where} {quote_literal(neighbour)}" if where else ""
                added.append(
                    f"alter type {enum.quoted_full_name} add value if not exists {quote_literal(label)}{place};")
            # Columns of the type point at this same object: migra now sees nothing to re-create.
            old.elements = list(enum.elements)
        # A new value cannot be used in the transaction that adds it: commit after the last one.
        return [operation(sql, self.name, commit_after=(n == len(added) - 1)) for n, sql in enumerate(added)]


class QuotedLabels(Correction):
    name = "enums.quoted-labels"
    fixes = "migra writes an enum's labels unescaped: CREATE TYPE fails on a label with a quote"

    def rewrite(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        broken = {enum.create_statement.strip(): enum for enum in desired.inspected.enums.values()
                  if any("'" in label for label in enum.elements)}
        if not broken:
            return statements
        out = []
        for statement in statements:
            enum = broken.get(statement.sql.strip())
            if enum is None:
                out.append(statement)
                continue
            labels = ", ".join(quote_literal(label) for label in enum.elements)
            out.append(operation(f"create type {enum.quoted_full_name} as enum ({labels});", self.name))
        return out


# This object kind's corrections, in the order they run.
CORRECTIONS = (EnumValues(), QuotedLabels())
