"""Stage 5d (continued): the SQL of pre-flight checks, one builder per kind of candidate (preflight.py).

Every query is written here from identifiers (quote_ident), literals and type names; an expression a
declared statement carries only through inert_expressions.emit, which refuses what it cannot show
inert. Each query counts, in one number, what would make its statement fail; its listing query shows
those rows, for the user to run. Pure: the tables' facts and the catalog come from the caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..diff.statement_facts import qualified
from ..sqltext import quote_ident
from .expression_catalog import Catalog, NotInert, literal, tree, type_sql
from .inert_expressions import BOOL, emit, operator_sql
from .partition_bounds import bounds_condition, column_ref
from .preflight import LABELS, Candidate, Table

LISTED = 100  # rows a listing query shows
DATA_BEFORE = "a data step that runs first (reconcile plan --data-before FILE)"
_INTEGERS, _ROUNDED = {21, 23, 20}, {1700, 700, 701}  # int2, int4, int8; numeric, float4, float8


@dataclasses.dataclass(frozen=True)
class Query:
    """One count to make on the target: the SQL returns one number (0: nothing would fail)."""

    statement: int
    summary: str
    label: str  # what is checked, after the summary: "foreign key users_org_fkey"
    rows: int  # the rows of the table it counts in
    what: str = ""  # what the counted things are, after "3 of 200": "rows have NULL in nickname"
    fix: str = ""  # what to do when some would fail
    sql: str | None = None  # None: not_checked says why, or `failing` is known already
    listing: str | None = None  # a read-only query that lists what would fail
    unit: str = "rows"  # or "names"
    failing: int | None = None  # known without a query
    errors_mean_failure: bool = False  # it runs a cast: PostgreSQL's data error means a row does not cast
    not_checked: str | None = None


def queries(found: list[Candidate], tables: Mapping[str, Table | None], catalog: Catalog, major: int) -> list[Query]:
    """The queries of the candidates whose tables are on the target and hold rows (`tables`: read there)."""
    out = []
    for c in found:
        table = tables.get(c.table)
        if table is None:
            continue

        def make(**fields):
            fields.setdefault("label", label(c))
            fields.setdefault("rows", table.default_rows if c.kind == "default partition" else table.rows)
            return Query(c.statement, c.summary, **fields)

        if c.not_checked is not None:
            made = [make(not_checked=c.not_checked, unit="names" if c.kind == "archive name" else "rows")]
        else:
            try:
                made = _BUILDERS[c.kind](c, table, tables, catalog, major, make)
            except NotInert as reason:
                made = [make(not_checked=str(reason))]
        out += [q for q in made if q.rows or q.unit == "names"]  # an empty table: nothing can fail
    return out


def label(c: Candidate) -> str:
    """What a check is, after its statement's summary: "foreign key users_org_fkey"."""
    action, facts = c.action, c.facts
    if c.kind == "unique index":
        return f"unique index {facts.name}"
    if c.kind in ("unique", "primary key nulls"):
        kind = "primary key" if action.constraint_type == "CONSTR_PRIMARY" else "unique key"
        return f"{kind} {action.name or ''}".strip() + (" NOT NULL" if c.kind == "primary key nulls" else "")
    if c.kind == "partition bounds":
        return f"bounds of {action.partition}"
    if c.kind == "archive name":
        return f"name {facts.new_schema}.{qualified(c.table).split('.', 1)[1]}"
    named = {"new not null column": "new NOT NULL column", "not null": "SET NOT NULL", "check": "CHECK",
             "foreign key": "foreign key", "type": "type change of"}
    if c.kind in named:
        return f"{named[c.kind]} {action.name or ''}".strip()
    return LABELS[c.kind]


def _relation(name: str) -> str:
    return quote_ident(qualified(name))


def _count(table: str, condition: str, **fields) -> dict:
    return dict(sql=f"SELECT pg_catalog.count(*) FROM {table} WHERE {condition}",
                listing=f"SELECT * FROM {table} WHERE {condition} LIMIT {LISTED}", **fields)


def _columns(c: Candidate, table: Table) -> dict:
    """The table's columns as the check may read them: not those retyped earlier in the plan."""
    columns = dict(table.columns)
    for name, number in c.changed_columns.items():
        if name in columns and number < c.statement:
            columns[name] = dataclasses.replace(columns[name], missing=f"changes type earlier in this plan "
                                                                          f"(statement {number})")
    return columns


def _column(c: Candidate, table: Table, name: str, catalog: Catalog, prefix: str = "") -> tuple[str, object]:
    """A column the query compares: on the target, not retyped earlier, of a built-in type."""
    return emit(column_ref(name), _columns(c, table), catalog, prefix)


def _tested(c: Candidate, table: Table, name: str) -> str:
    """A column the query only tests for NULL: on the target, not retyped earlier, of any type."""
    column = _columns(c, table).get(name)
    if column is None or column.missing:
        raise NotInert(f"column {name} {column.missing if column else 'is not on the target yet'}")
    return quote_ident(name)


def _new_not_null(c, table, tables, catalog, major, make):
    name = c.action.name
    return [make(failing=table.rows,
                 what=f"rows would hold NULL in the new NOT NULL column {name}",
                 listing=f"SELECT * FROM {_relation(c.table)} LIMIT {LISTED}",
                 fix=f"declare a DEFAULT for {name}, or declare it nullable, fill it in a data step "
                     f"(--data-after) and make it NOT NULL in a later plan")]


def _not_null(c, table, tables, catalog, major, make):
    name = c.action.name
    column = _tested(c, table, name)
    return [make(what=f"rows have NULL in {name}",
                 fix=f"fill the NULLs in {DATA_BEFORE}, or keep {name} nullable",
                 **_count(_relation(c.table), f"{column} IS NULL"))]


def _check(c, table, tables, catalog, major, make):
    condition, kind = emit(tree(c.action.expression), _columns(c, table), catalog)
    if kind not in (BOOL, "unknown", "any"):
        raise NotInert("its expression is not a condition")
    name = c.action.name or ""
    return [make(what=f"rows break CHECK {name}".strip(),
                 fix=f"fix those rows in {DATA_BEFORE}, or change the constraint", **_count(_relation(c.table),
                                                                                        f"NOT ({condition})"))]


def _keys(c: Candidate, table: Table, catalog: Catalog) -> tuple[list[str], str | None, bool]:
    """(key SQL, predicate SQL, NULLS NOT DISTINCT) of a unique constraint or a unique index."""
    if c.facts is None or c.facts.node != "IndexStmt":
        return [_column(c, table, k, catalog)[0] for k in c.action.keys], None, c.action.nulls_not_distinct
    keys = []
    for text in c.facts.index_keys:
        element = tree(text)["IndexElem"]
        if element.get("opclass") or element.get("collation"):
            raise NotInert("a key has an operator class or collation of its own")
        keys.append(_column(c, table, element["name"], catalog)[0] if element.get("name")
                    else emit(element.get("expr") or {}, _columns(c, table), catalog)[0])
    predicate = emit(tree(c.facts.predicate), _columns(c, table), catalog)[0] if c.facts.predicate else None
    return keys, predicate, c.facts.nulls_not_distinct


def _unique(c, table, tables, catalog, major, make):
    keys, predicate, nulls_not_distinct = _keys(c, table, catalog)
    filters = ([] if nulls_not_distinct else [f"{k} IS NOT NULL" for k in keys]) + ([predicate] if predicate else [])
    where = f" WHERE {' AND '.join(filters)}" if filters else ""
    group = ", ".join(keys)
    duplicates = f"FROM {_relation(c.table)}{where} GROUP BY {group} HAVING pg_catalog.count(*) > 1"
    return [make(what=f"rows share their ({group}) with another row",
                 sql=f"SELECT COALESCE(pg_catalog.sum(n), 0) FROM (SELECT pg_catalog.count(*) AS n "
                     f"{duplicates}) AS duplicates",
                 listing=f"SELECT {group}, pg_catalog.count(*) {duplicates} LIMIT {LISTED}",
                 fix=f"remove or merge the duplicates in {DATA_BEFORE}")]


def _primary_key_nulls(c, table, tables, catalog, major, make):
    if c.facts is not None:
        names = [tree(t)["IndexElem"].get("name") for t in c.facts.index_keys]
        if not all(names):
            raise NotInert("its index has expression keys")
    else:
        names = list(c.action.keys)
    keys = [_tested(c, table, k) for k in names]
    return [make(what="rows have NULL in the primary key",
                 fix=f"fill the NULL keys in {DATA_BEFORE}",
                 **_count(_relation(c.table), " OR ".join(f"{k} IS NULL" for k in keys)))]


def _foreign_key(c, table, tables, catalog, major, make):
    action, referenced = c.action, c.other
    if not action.referenced_keys or len(action.referenced_keys) != len(action.keys):
        raise NotInert("it does not name the referenced columns")
    own = [_column(c, table, k, catalog, "c.") for k in action.keys]
    present = " AND ".join(f"{sql} IS NOT NULL" for sql, _ in own)
    if c.other_is_new:
        condition, why = present, f"{referenced}, which this plan creates empty"
    else:
        target = tables.get(referenced)
        if target is None:
            raise NotInert(f"{referenced} is not on the target")
        pairs = []
        for (sql, kind), name in zip(own, action.referenced_keys):
            theirs, their_kind = emit(column_ref(name), target.columns, catalog, "p.")
            pairs.append(f"{theirs} {operator_sql('=', their_kind, kind, catalog)} {sql}")
        condition = (f"{present} AND NOT EXISTS (SELECT 1 FROM {_relation(referenced)} AS p "
                     f"WHERE {' AND '.join(pairs)})")
        why = referenced
    if action.match_full and len(own) > 1:
        condition = (f"({condition}) OR (({' OR '.join(f'{s} IS NOT NULL' for s, _ in own)}) AND "
                     f"({' OR '.join(f'{s} IS NULL' for s, _ in own)}))")
    keys = ", ".join(action.keys)
    return [make(what=f"rows have a ({keys}) that no row of {why} has",
                 sql=f"SELECT pg_catalog.count(*) FROM {_relation(c.table)} AS c WHERE {condition}",
                 listing=f"SELECT c.* FROM {_relation(c.table)} AS c WHERE {condition} LIMIT {LISTED}",
                 fix=f"add the missing rows to {referenced} or fix the keys in {DATA_BEFORE}")]


def _type(c, table, tables, catalog, major, make):
    action = c.action
    column, old = _column(c, table, action.name, catalog)
    target = type_sql(tree(action.type_name), any_schema=True)
    resolved = catalog.types.get(target)
    if resolved is None or resolved[1] == "other":
        raise NotInert(f"{target} is neither a built-in type nor an enum on the target")
    new, using = resolved[0], tree(action.expression)
    cast = using.get("TypeCast") or {}
    argument = (cast.get("arg") or {}).get("ColumnRef", {}).get("fields") or ()
    explicit = [f.get("String", {}).get("sval") for f in argument] == [action.name] and \
        type_sql(cast.get("typeName") or {}, any_schema=True) == target  # migra's USING col::type
    relation, plain = _relation(c.table), explicit or not using
    what = f"rows hold a {action.name} that does not convert to {action.new_type}"
    fix = f"convert or fix those values in {DATA_BEFORE}, or declare a USING expression that converts them"
    if plain and new in catalog.string_types:
        modifiers = tree(action.type_name).get("typmods") or ()
        if explicit or len(modifiers) != 1:
            return []  # an explicit cast to a string type, or one without a length, never fails: it truncates
        length = int(modifiers[0]["A_Const"]["ival"].get("ival", 0))
        trimmed = f"pg_catalog.char_length(pg_catalog.rtrim(CAST({column} AS pg_catalog.text), ' '))"
        return [make(what=f"rows hold a {action.name} longer than {length}", fix=fix,
                     **_count(relation, f"{trimmed} > {length}"))]
    source = f"pg_catalog.round({column})" if old in _ROUNDED and new in _INTEGERS else column
    valid = (f"{column} IS NOT NULL AND NOT pg_catalog.pg_input_is_valid(CAST({source} AS pg_catalog.text), "
             f"{literal(target)})")
    text_exact = old in catalog.string_types or (old in _INTEGERS | _ROUNDED and new in _INTEGERS | _ROUNDED)
    if plain and major >= 16 and text_exact:
        return [make(what=what, fix=fix, **_count(relation, valid))]
    value, kind = (column, old) if plain else emit(using, _columns(c, table), catalog)
    if not catalog.cast_safe(kind, new):
        raise NotInert(f"its cast to {action.new_type} runs a function that is not immutable")
    listing = f"SELECT * FROM {relation} WHERE {valid} LIMIT {LISTED}" if text_exact and major >= 16 else None
    return [make(what=what, fix=fix, errors_mean_failure=True, listing=listing,
                 sql=f"SELECT pg_catalog.count(CAST({value} AS {target})) FROM {relation}")]


def _partition_bounds(c, table, tables, catalog, major, make):
    parent = tables.get(c.other)
    if parent is None:
        raise NotInert(f"{c.other} is not on the target")
    condition = bounds_condition(tree(c.action.bound), parent, catalog)
    return [make(what=f"rows of {c.table} fall outside its bounds",
                 fix=f"move those rows out of {c.table} in {DATA_BEFORE}, or attach it with bounds that hold them",
                 **_count(_relation(c.table), f"NOT ({condition})"))]


def _default_partition(c, table, tables, catalog, major, make):
    bound = tree(c.facts.bound if c.facts is not None else c.action.bound)
    if not table.default_partition or not table.default_rows or bound.get("is_default"):
        return []
    condition = bounds_condition(bound, table, catalog)
    default = table.default_partition
    return [make(label=f"rows in the DEFAULT partition {default}", rows=table.default_rows,
                 what=f"rows of the DEFAULT partition {default} fall within the new partition's bounds",
                 fix=f"move them out of {default} first: 'reconcile maintain' does so for the current and upcoming "
                     f"partitions; otherwise a data step (--data-before) that copies them to a temporary table and "
                     f"deletes them, and one (--data-after) that inserts them into the parent",
                 **_count(_relation(default), condition))]


def _converted_rows(c, table, tables, catalog, major, make):
    """Rows of a table converted to partitions that no declared partition would hold (none, with a
    DEFAULT partition): the copy would fail on the first of them."""
    if any(tree(bound).get("is_default") for bound in c.bounds):
        return []
    if not c.partition_key:
        raise NotInert("the declared table is partitioned by an expression")
    keyed = dataclasses.replace(table, partition_key=c.partition_key)
    held = " OR ".join(f"({bounds_condition(tree(bound), keyed, catalog)})" for bound in c.bounds) or "false"
    return [make(what=f"rows of {c.table} fall outside every declared partition of it",
                 fix="declare partitions that hold them (a larger keep in the partition spec), or "
                     "default_partition: true, or move those rows out first (reconcile plan --data-before FILE)",
                 **_count(_relation(c.table), f"NOT ({held})"))]


def _archive_name(c, table, tables, catalog, major, make):
    name, into = qualified(c.table).split(".", 1)[1], c.facts.new_schema
    moving = (f"SELECT {literal(name)} UNION SELECT i.relname FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i "
              f"ON i.oid = x.indexrelid WHERE x.indrelid = {literal(_relation(c.table))}::pg_catalog.regclass")
    taken = (f"SELECT n.nspname, c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON "
             f"n.oid = c.relnamespace WHERE n.nspname = {literal(into)} AND c.relname IN ({moving}) UNION ALL "
             f"SELECT n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON "
             f"n.oid = t.typnamespace WHERE n.nspname = {literal(into)} AND t.typname = {literal(name)} "
             f"AND t.typrelid = 0")
    return [make(unit="names", what=f"name(s) it moves into {into} already taken there",
                 sql=f"SELECT pg_catalog.count(*) FROM ({taken}) AS taken", listing=taken,
                 fix=f"rename or drop what holds {into}.{name} there (keep its rows first), or set archive_schema "
                     f"in the partition spec to another schema")]


_BUILDERS = {"new not null column": _new_not_null, "not null": _not_null, "check": _check, "unique": _unique,
             "unique index": _unique, "primary key nulls": _primary_key_nulls, "foreign key": _foreign_key,
             "type": _type, "partition bounds": _partition_bounds, "default partition": _default_partition,
             "archive name": _archive_name, "converted rows": _converted_rows}
