"""Correction for view definitions that differ only in how the server prints them.

pg_get_viewdef on PostgreSQL 15 qualifies every column of a single-table query
(learner_analytics.organization_id); 16 and later print organization_id. migra compares the text,
so the same view read from two majors looks changed and would be dropped and re-created.
"""

from __future__ import annotations

from pglast import ast, parse_sql
from pglast.stream import RawStream
from pglast.visitors import Visitor

from .base import Correction, DiffContext, InspectedDatabase


class _Unqualify(Visitor):
    """Drop the table qualifier of column references in SELECTs that read exactly one table."""

    def visit_SelectStmt(self, ancestors, node):
        tables = node.fromClause or ()
        if len(tables) != 1 or not isinstance(tables[0], ast.RangeVar):
            return
        names = {tables[0].relname}
        if tables[0].alias is not None:
            names = {tables[0].alias.aliasname}
        for part in ("targetList", "whereClause", "groupClause", "havingClause", "sortClause"):
            value = getattr(node, part)
            if value is not None:
                _Strip(names)(value)


class _Strip(Visitor):
    def __init__(self, names):
        super().__init__()
        self.names = names

    def visit_SelectStmt(self, ancestors, node):
        return self.SKIP  # a subquery has its own FROM

    def visit_ColumnRef(self, ancestors, node):
        fields = node.fields
        if len(fields) == 2 and isinstance(fields[0], ast.String) and fields[0].sval in self.names:
            node.fields = (fields[1],)


def normalized(definition: str) -> str | None:
    try:
        tree = parse_sql(definition.strip().rstrip(";"))
    except Exception:
        return None
    _Unqualify()(tree)
    return RawStream()(tree)


class ViewDefinitionText(Correction):
    name = "views.definition-text"
    fixes = "migra compares view definitions as text, which PostgreSQL 15 and 16+ print differently"

    def before_migra(self, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> bool:
        changed = False
        for key, view in desired.inspected.selectables.items():
            old = current.inspected.selectables.get(key)
            if old is None or view.relationtype not in ("v", "m") or old.definition == view.definition:
                continue
            same = normalized(old.definition)
            if same is not None and same == normalized(view.definition):
                old.definition = view.definition
                changed = True
        return changed


# This object kind's corrections, in the order they run.
CORRECTIONS = (ViewDefinitionText(),)
