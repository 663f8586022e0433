"""Corrections for views and materialized views: options (security_invoker, security_barrier,
check_option; a materialized view's storage parameters) migra does not compare, and re-creations
migra makes for nothing."""

from __future__ import annotations

from ..operations import Operation
from ..statement_facts import qualified
from .base import Correction, DiffContext, InspectedDatabase, Side, dropped_relations, recreated_relations

_VIEW_KINDS = ("view", "materialized view")
_DROPPED_COLUMNS = ("AT_AlterColumnType", "AT_DropColumn")


class UnchangedViewsKept(Correction):
    name = "views.unchanged-kept"
    fixes = ("migra drops and re-creates every view and materialized view over a table whose column types "
             "change, even one that reads none of those columns: a materialized view is then refilled (and "
             "its indexes rebuilt) while the plan holds its locks")

    def rewrite(self, statements: list[Operation], current: Side, desired: Side, context: DiffContext) -> list:
        recreated = recreated_relations(statements)
        if not recreated:
            return statements
        reads = current.snapshot.fact("reads columns")
        changed_columns = _changed_columns(statements)
        kept: set[str] = set()
        # A view over a kept view may be kept in its turn: until nothing more can be.
        while True:
            dropped = dropped_relations(statements) - kept
            more = {view for view in recreated - kept
                    if _same_definition(view, current, desired)
                    and not any(_read_changes(column, changed_columns, dropped - {view}) for column in reads.get(view) or ())}
            if not more:
                break
            kept |= more
        if not kept:
            return statements
        return [s for s in statements if not _drops_or_creates(s, kept)]


def _changed_columns(statements) -> set[str]:
    """schema.table.column of the columns whose type changes or that are dropped."""
    return {f"{qualified(s.facts.relation)}.{action.name}" for s in statements if s.facts.node == "AlterTableStmt"
            for action in s.facts.actions if action.subtype in _DROPPED_COLUMNS and action.name}


def _read_changes(column: str, changed_columns: set[str], dropped: set[str]) -> bool:
    table = column.rsplit(".", 1)[0]
    return column in changed_columns or table in dropped or (
        column.endswith(".*") and any(c.startswith(table + ".") for c in changed_columns))


def _same_definition(view: str, current: Side, desired: Side) -> bool:
    """The same kind, definition and columns on both sides."""
    for kind in _VIEW_KINDS:
        if current.snapshot.objects.get((kind, view)) != desired.snapshot.objects.get((kind, view)):
            return False
    prefix = view + "."
    columns = [{k: v for k, v in side.snapshot.of_kind("column").items() if k.startswith(prefix)}
               for side in (current, desired)]
    return columns[0] == columns[1] and any((kind, view) in current.snapshot.objects for kind in _VIEW_KINDS)


def _drops_or_creates(statement: Operation, views: set[str]) -> bool:
    facts = statement.facts
    if facts.node == "DropStmt" and facts.object_type in ("OBJECT_VIEW", "OBJECT_MATVIEW"):
        return bool({qualified(name) for name in facts.objects} & views)
    if facts.node == "ViewStmt":
        return qualified(facts.relation) in views
    if facts.node == "CreateTableAsStmt":
        return bool(facts.creates & views)
    return False


def _options(text: str | None) -> dict:
    return dict(item.split("=", 1) for item in (text or "").split(",") if item)


class ViewOptions(Correction):
    name = "views.options"
    fixes = ("migra ignores the options of views (security_invoker, security_barrier) and of materialized "
             "views (fillfactor, autovacuum settings), and drops them on re-creation")

    def after_migra(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> list[str]:
        before = current.snapshot.fact("view options")
        after = desired.snapshot.fact("view options")
        names = desired.snapshot.fact("qualified name")
        recreated = recreated_relations(statements)
        out = []
        for view, text in sorted(after.items()):
            kind = "materialized view" if ("materialized view", view) in desired.snapshot.objects else "view"
            wanted = _options(text)
            had = {} if view not in before or view in recreated else _options(before[view])
            changed = {k: v for k, v in wanted.items() if had.get(k) != v}
            removed = sorted(set(had) - set(wanted))
            if changed:
                out.append(f"alter {kind} {names[view]} set ({', '.join(f'{k}={v}' for k, v in sorted(changed.items()))});")
            if removed:
                out.append(f"alter {kind} {names[view]} reset ({', '.join(removed)});")
        return out


# This object kind's corrections, in the order they run.
CORRECTIONS = (UnchangedViewsKept(), ViewOptions())
