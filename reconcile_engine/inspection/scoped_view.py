"""Stage 3 (inspect): schemainspect's view of a database read without the relations a diff kept to
what differs leaves out (diff/scope.py). A plan that changes a policy on one table of thousands then
reads that table, not thousands (at 2,500 tables a whole read is about 5 s, two thirds of it Python).

schemainspect (heavy, and it adds a warning filter) is imported only where a view is read so. Nothing
of it is copied or patched: each of its queries is wrapped, unchanged, in an outer SELECT that leaves
out the rows of those relations, so each row it then reads is one it read whole, in the same order (a subquery with
an ORDER BY is sorted where it is, and a filter above it keeps that order).

A row is left out as migra_view._leave_out_relations would leave out the object it makes, by the
same names ("schema.name" of the relation it is, or of its table): the view read so, once cut down
with the same relations (InspectedDatabase.without), is the view read whole and cut down. Only
relations another one read needs are read after all: schemainspect looks up every view's
dependencies and every child table's parent while it reads, and would fail on one it did not read.
"""

from __future__ import annotations

import functools

# schemainspect's queries, by the columns of their rows naming the relation a row is or belongs to
# (the attributes migra_view._RELATION_NAMED_BY names for the objects those rows make). The views'
# dependencies (DEPS_QUERY) by the view depending.
_NAMED_BY = {
    "ALL_RELATIONS_QUERY": ("name",), "INDEXES_QUERY": ("name", "table_name"),
    "SEQUENCES_QUERY": ("name", "table_name"), "CONSTRAINTS_QUERY": ("table_name",),
    "TRIGGERS_QUERY": ("table_name",), "RLSPOLICIES_QUERY": ("table_name",), "PRIVILEGES_QUERY": ("name",),
    "DEPS_QUERY": ("name",),
}
# What a relation needs read with it: each view's relations read (its rewrite rule's dependencies),
# each child table's parents (partitions and INHERITS alike).
_NEEDS = """
    SELECT n.nspname || '.' || c.relname, rn.nspname || '.' || r.relname
    FROM pg_catalog.pg_rewrite rw
    JOIN pg_catalog.pg_class c ON c.oid = rw.ev_class JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    JOIN pg_catalog.pg_class r ON r.oid = d.refobjid AND r.oid <> c.oid
    JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
    UNION
    SELECT n.nspname || '.' || c.relname, pn.nspname || '.' || p.relname
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_class p ON p.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
"""


@functools.cache
def _without_relations(inspector: type) -> type:
    """schemainspect's PostgreSQL inspector (`inspector`), its queries wrapped to leave out the rows of
    the relations `left_out` names. The names are a bound parameter (the driver sends them as one array
    constant): the server then pushes the condition down to where the rows are made, and looks each up
    in a hash."""
    from sqlalchemy import text

    class WithoutRelations(inspector):
        def __init__(self, c, left_out: list[str]):
            self._left_out = left_out
            super().__init__(c)

        def load_all(self):
            for query, columns in _NAMED_BY.items():
                original = getattr(self, query)
                if original is None:
                    continue
                kept = " AND ".join(
                    f"(reconcile_rows.\"schema\" || '.' || reconcile_rows.{column} = ANY(:left_out)) IS NOT TRUE"
                    for column in columns)  # NULL: the row names no relation there, kept
                inner = original.text.strip().rstrip(";")  # a line of its own: it may end in a comment
                wrapped = text(f"SELECT * FROM (\n{inner}\n) reconcile_rows WHERE {kept}")
                setattr(self, query, wrapped.bindparams(left_out=self._left_out))
            super().load_all()

    return WithoutRelations


def read_without(conn, leaving_out: frozenset[str]):
    """schemainspect's view through `conn` (a SQLAlchemy connection), without the relations
    `leaving_out` ("schema.name"), but for those a relation read needs; and the relations it was read
    without: (schemainspect.pg.PostgreSQL, frozenset)."""
    from schemainspect.pg.obj import PostgreSQL
    from sqlalchemy import text

    needs: dict[str, list[str]] = {}
    for relation, needed in conn.execute(text(_NEEDS)):
        needs.setdefault(relation, []).append(needed)
    left_out = set(leaving_out)
    pending = [relation for relation in needs if relation not in left_out]
    while pending:
        for needed in needs.get(pending.pop(), ()):
            if needed in left_out:
                left_out.discard(needed)
                pending.append(needed)
    if not left_out:
        return PostgreSQL(conn), frozenset()
    view = _without_relations(PostgreSQL)(conn, sorted(left_out))
    # Read: from now on schemainspect's own inspector, like a view read whole (a frozen view is pickled
    # with its class, and this one is made where it is first needed).
    view.__class__ = PostgreSQL
    del view._left_out
    return view, frozenset(left_out)
