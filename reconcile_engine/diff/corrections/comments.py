"""Corrections for comments: migra never compares COMMENT ON, and a re-created view loses its own."""

from __future__ import annotations

from ...sqltext import quote_literal
from .base import Correction, DiffContext, Side, dropped_relations, recreated_relations


def _on_recreated(reference: str, recreated: set[str]) -> bool:
    # reference looks like 'MATERIALIZED VIEW public.mv' or 'COLUMN public.mv.col' (identifiers as %I quotes them)
    target = reference.split(" ")[-1].replace('"', "")
    return any(target == name or target.startswith(name + ".") for name in recreated)


class Comments(Correction):
    name = "comments"
    fixes = "migra ignores comments on tables, columns, views, functions and policies"

    def after_migra(self, statements, current: Side, desired: Side, context: DiffContext) -> list[str]:
        before = current.snapshot.of_kind("comment")
        after = desired.snapshot.of_kind("comment")
        recreated = recreated_relations(statements)
        out = []
        for reference, text in sorted(after.items()):
            if before.get(reference) != text or _on_recreated(reference, recreated):
                out.append(f"comment on {reference} is {quote_literal(text)};")
        dropped_tables = dropped_relations(statements)
        for reference in sorted(set(before) - set(after)):
            if not _on_recreated(reference, dropped_tables):
                out.append(f"comment on {reference} is null;")
        return out


# This object kind's corrections, in the order they run.
CORRECTIONS = (Comments(),)
