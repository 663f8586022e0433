"""Stage 5a: what each planned statement does and whether it destroys data, read with PostgreSQL's own parser.

No regular expressions over SQL: pglast gives the statement's syntax tree, and the current
catalog snapshot gives the column types that a type change starts from.
"""

from __future__ import annotations

import dataclasses

from pglast import ast
from pglast.enums import AlterTableType, ObjectType
from pglast.stream import RawStream

from ..inspection.snapshot import CatalogSnapshot
from ..sqltext import parse_statements

# Object kinds whose DROP deletes stored data (or a counter that cannot be rebuilt).
_DATA_OBJECTS = {
    ObjectType.OBJECT_TABLE: "table",
    ObjectType.OBJECT_SCHEMA: "schema",
    ObjectType.OBJECT_SEQUENCE: "sequence",
    ObjectType.OBJECT_FOREIGN_TABLE: "foreign table",
}

# Type changes that keep every value (old type -> new types), as format_type names them.
_WIDENINGS = {
    "smallint": {"integer", "bigint", "numeric", "real", "double precision", "text"},
    "integer": {"bigint", "numeric", "double precision", "text"},
    "bigint": {"numeric", "text"},
    "real": {"double precision"},
    "character varying": {"text"},
    "character": {"text", "character varying"},
    "date": {"timestamp without time zone", "timestamp with time zone"},
    "timestamp without time zone": {"timestamp with time zone"},
    "json": {"jsonb", "text"},
}


@dataclasses.dataclass(frozen=True)
class Classification:
    summary: str  # e.g. "create table public.users"
    destructive: str | None  # why it can lose data, or None
    rows_of: str | None = None  # the table whose rows are at stake (dropped, rewritten or detached)


def _name(*parts) -> str:
    return ".".join(p for p in parts if p)


def _rangevar(rv) -> str:
    return _name(rv.schemaname, rv.relname)


def _names(names) -> str:
    try:
        return ".".join(n.sval for n in names)
    except (AttributeError, TypeError):
        return RawStream()(names) if names is not None else "?"


def _type_name(type_name) -> str:
    return RawStream()(type_name)


def _full_type(text: str) -> str:
    return text.split(" not null")[0].split(" default ")[0].split(" collate ")[0].split(" generated ")[0].strip()


def _base_type(text: str) -> str:
    return _full_type(text).split("(")[0].strip()


def _is_widening(old: str, new_sql: str) -> bool:
    """old: format_type text of the current column; new_sql: the type as the statement writes it."""
    aliases = {
        "int": "integer", "int4": "integer", "int8": "bigint", "int2": "smallint", "float8": "double precision",
        "float4": "real", "varchar": "character varying", "timestamptz": "timestamp with time zone",
        "timestamp": "timestamp without time zone", "bool": "boolean",
    }
    new = new_sql.lower().replace("pg_catalog.", "").strip()
    new_base = aliases.get(new.split("(")[0].strip(), new.split("(")[0].strip())
    old_base = _base_type(old)
    if new_base == old_base:
        if "(" not in new:  # varchar(n) -> varchar, numeric(p,s) -> numeric: limit removed
            return True
        old_args = old.split("(", 1)[1].split(")")[0] if "(" in old else None
        new_args = new.split("(", 1)[1].split(")")[0]
        if old_args is None:
            return False
        try:
            old_n = [int(x) for x in old_args.split(",")]
            new_n = [int(x) for x in new_args.split(",")]
        except ValueError:
            return False
        if old_base == "numeric":
            # numeric(p,s) keeps values when integer digits and scale both do not shrink.
            old_p, old_s = (old_n + [0])[:2]
            new_p, new_s = (new_n + [0])[:2]
            return new_s >= old_s and (new_p - new_s) >= (old_p - old_s)
        return all(n >= o for n, o in zip(new_n, old_n, strict=False))
    return new_base in _WIDENINGS.get(old_base, set())


def _column_text(current: CatalogSnapshot | None, table: str, column: str) -> str | None:
    if current is None:
        return None
    return current.objects.get(("column", f"{table if '.' in table else 'public.' + table}.{column}"))


def _alter_table(node, current: CatalogSnapshot | None) -> Classification:
    table = _rangevar(node.relation)
    actions, destructive, rows_of = [], None, None
    for cmd in node.cmds:
        subtype = cmd.subtype
        if subtype == AlterTableType.AT_DropColumn:
            column = _column_text(current, table, cmd.name)
            if column is not None and " generated always as (" in column:
                actions.append(f"drop generated column {cmd.name} (derived: its values are computed again)")
                continue
            actions.append(f"drop column {cmd.name}")
            destructive = f"drops column {table}.{cmd.name} and its data"
            rows_of = table
        elif subtype == AlterTableType.AT_AlterColumnType:
            new_type = _type_name(cmd.def_.typeName)
            actions.append(f"change type of {cmd.name} to {new_type}")
            old = None
            if current is not None:
                schema_table = table if "." in table else f"public.{table}"
                old = current.objects.get(("column", f"{schema_table}.{cmd.name}"))
            if old is None or not _is_widening(old, new_type):
                was = f" from {_full_type(old) if old else 'its current type'}"
                destructive = f"changes {table}.{cmd.name}{was} to {new_type}: values may be lost or rejected"
                rows_of = table
        elif subtype == AlterTableType.AT_AddColumn:
            actions.append(f"add column {cmd.def_.colname}")
        elif subtype == AlterTableType.AT_ColumnDefault:
            actions.append(f"{'set' if cmd.def_ is not None else 'drop'} default of {cmd.name}")
        elif subtype == AlterTableType.AT_DetachPartition:
            partition = _rangevar(cmd.def_.name)
            actions.append(f"detach partition {partition}")
            rows_of = partition
        else:
            label = subtype.name.removeprefix("AT_")
            detail = getattr(cmd, "name", None) or (getattr(cmd.def_, "conname", None) if cmd.def_ else None)
            actions.append(f"{_humanize(label)}{' ' + detail if detail else ''}")
    return Classification(f"alter table {table}: {', '.join(actions)}", destructive, rows_of)


def _humanize(camel: str) -> str:
    out = ""
    for ch in camel:
        out += (" " + ch.lower()) if ch.isupper() and out else ch.lower()
    return out


def classify(sql: str, current: CatalogSnapshot | None = None) -> Classification:
    statements = parse_statements(sql)
    if statements is None:
        return Classification(_first_line(sql), "could not be parsed, so it cannot be shown to be safe")
    if len(statements) != 1:
        parts = [classify(RawStream()(s.stmt), current) for s in statements]
        reasons = [p.destructive for p in parts if p.destructive]
        return Classification("; ".join(p.summary for p in parts), "; ".join(reasons) or None)
    node = statements[0].stmt
    if isinstance(node, ast.DropStmt):
        kind = node.removeType.name.removeprefix("OBJECT_").lower().replace("_", " ")
        kind = {"matview": "materialized view"}.get(kind, kind)
        targets = ", ".join(_names(o) for o in node.objects or ())
        destructive = None
        if node.removeType in _DATA_OBJECTS:
            destructive = f"drops {_DATA_OBJECTS[node.removeType]} {targets} and everything in it"
        if node.behavior.name == "DROP_CASCADE":
            destructive = (destructive or f"drops {kind} {targets}") + " with CASCADE"
        rows_of = targets if node.removeType == ObjectType.OBJECT_TABLE and len(node.objects) == 1 else None
        return Classification(f"drop {kind} {targets}", destructive, rows_of)
    if isinstance(node, ast.TruncateStmt):
        return Classification("truncate " + ", ".join(_rangevar(r) for r in node.relations), "deletes every row")
    if isinstance(node, ast.DeleteStmt):
        return Classification(f"delete from {_rangevar(node.relation)}", "deletes rows")
    if isinstance(node, ast.AlterTableStmt):
        return _alter_table(node, current)
    if isinstance(node, ast.CreateStmt):
        kind = "partition" if node.partbound else "table"
        return Classification(f"create {kind} {_rangevar(node.relation)}", None)
    if isinstance(node, ast.IndexStmt):
        return Classification(f"create index {node.idxname} on {_rangevar(node.relation)}", None)
    if isinstance(node, ast.CreatePolicyStmt):
        return Classification(f"create policy {node.policy_name} on {_rangevar(node.table)}", None)
    if isinstance(node, ast.CreateTableAsStmt):
        return Classification(f"create materialized view {_rangevar(node.into.rel)}", None)
    if isinstance(node, ast.ViewStmt):
        return Classification(f"create view {_rangevar(node.view)}", None)
    if isinstance(node, ast.CommentStmt):
        kind = node.objtype.name.removeprefix("OBJECT_").lower().replace("matview", "materialized view")
        return Classification(f"comment on {kind} {_names(node.object)}", None)
    return Classification(_first_line(sql), None)


def _first_line(sql: str) -> str:
    line = sql.strip().splitlines()[0] if sql.strip() else ""
    return line if len(line) <= 80 else line[:77] + "..."


# -- lock and online-safety hazards ---------------------------------------------------------------

DELETES_DATA = "deletes data"
REWRITES_TABLE = "rewrites the table"
ACCESS_EXCLUSIVE = "takes an ACCESS EXCLUSIVE lock (blocks reads and writes)"
BLOCKS_WRITES = "blocks writes while it runs"
BUILDS_INDEX = "blocks writes while building an index"
SCANS_TO_VALIDATE = "scans the table to validate"
NOT_IN_TRANSACTION = "cannot run in a transaction"

# ALTER TABLE subcommands that take a weaker lock than ACCESS EXCLUSIVE.
_WEAKER_ALTERS = {AlterTableType.AT_ValidateConstraint, AlterTableType.AT_AttachPartition}


def _takes_access_exclusive(cmd) -> bool:
    if cmd.subtype in _WEAKER_ALTERS:
        return False
    # Adding a foreign key takes SHARE ROW EXCLUSIVE on both tables: writes wait, reads do not.
    return not (cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.contype.name == "CONSTR_FOREIGN")


def _default_may_rewrite(column_def) -> bool:
    """Since PostgreSQL 11 a constant or stable default fills without a rewrite; a volatile one rewrites.
    The parser cannot tell a function's volatility, so any function call but the clock counts as volatile."""
    for constraint in column_def.constraints or ():
        if constraint.contype.name in ("CONSTR_GENERATED", "CONSTR_IDENTITY"):
            return True
        if constraint.contype.name == "CONSTR_DEFAULT":
            expr = constraint.raw_expr
            while isinstance(expr, ast.TypeCast):
                expr = expr.arg
            if isinstance(expr, ast.FuncCall):
                return _names(expr.funcname).split(".")[-1] not in ("now", "statement_timestamp", "transaction_timestamp")
    return False


def _type_change_rewrites(old: str | None, new_type: str) -> bool:
    """varchar(n) -> varchar(m >= n), varchar -> text and dropping a limit are catalog-only changes."""
    if old is None or not _is_widening(old, new_type):
        return True
    old_base = _base_type(old)
    return old_base not in ("character varying", "text", "numeric", "bit varying") or new_type.lower().startswith(
        ("int", "big", "small", "double", "real", "pg_catalog.int", "pg_catalog.float"))


def _alter_table_hazards(node, current) -> set[str]:
    found = set()
    table = _rangevar(node.relation)
    for cmd in node.cmds:
        subtype = cmd.subtype
        found.add(ACCESS_EXCLUSIVE if _takes_access_exclusive(cmd) else BLOCKS_WRITES)
        if subtype == AlterTableType.AT_AddColumn and _default_may_rewrite(cmd.def_):
            found.add(REWRITES_TABLE)
        elif subtype == AlterTableType.AT_DropColumn:
            if " generated always as (" not in (_column_text(current, table, cmd.name) or ""):
                found.add(DELETES_DATA)
        elif subtype == AlterTableType.AT_AlterColumnType:
            old = None
            if current is not None:
                old = current.objects.get(("column", f"{table if '.' in table else 'public.' + table}.{cmd.name}"))
            if _type_change_rewrites(old, _type_name(cmd.def_.typeName)):
                found.add(REWRITES_TABLE)
            if old is None or not _is_widening(old, _type_name(cmd.def_.typeName)):
                found.add(DELETES_DATA)
        elif subtype == AlterTableType.AT_SetNotNull:
            found.add(SCANS_TO_VALIDATE)
        elif subtype == AlterTableType.AT_AddConstraint:
            constraint = cmd.def_
            kind = constraint.contype.name
            if kind in ("CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION") and not constraint.indexname:
                found.add(BUILDS_INDEX)
            if kind in ("CONSTR_CHECK", "CONSTR_FOREIGN") and not constraint.skip_validation:
                found.add(SCANS_TO_VALIDATE)
        elif subtype in (AlterTableType.AT_ValidateConstraint, AlterTableType.AT_AttachPartition):
            found.discard(BLOCKS_WRITES)  # SHARE UPDATE EXCLUSIVE: reads and writes go on
            found.add(SCANS_TO_VALIDATE)
        elif subtype == AlterTableType.AT_DetachPartition and getattr(cmd.def_, "concurrent", False):
            found.discard(ACCESS_EXCLUSIVE)
            found.add(NOT_IN_TRANSACTION)
        elif subtype in (AlterTableType.AT_SetLogged, AlterTableType.AT_SetUnLogged,
                         AlterTableType.AT_SetTableSpace):
            found.add(REWRITES_TABLE)
    return found


def hazards_of(sql: str, current: CatalogSnapshot | None = None) -> tuple[str, ...]:
    """What running this statement does to a live, busy table (sorted, for stable output)."""
    statements = parse_statements(sql)
    if statements is None:
        return ()
    found: set[str] = set()
    for raw in statements:
        node = raw.stmt
        if isinstance(node, ast.AlterTableStmt):
            found |= _alter_table_hazards(node, current)
        elif isinstance(node, ast.IndexStmt):
            found.add(NOT_IN_TRANSACTION if node.concurrent else BUILDS_INDEX)
        elif isinstance(node, ast.DropStmt):
            if node.concurrent:
                found.add(NOT_IN_TRANSACTION)
            elif node.removeType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_INDEX, ObjectType.OBJECT_MATVIEW,
                                     ObjectType.OBJECT_POLICY, ObjectType.OBJECT_TRIGGER):
                found.add(ACCESS_EXCLUSIVE)
            if node.removeType in _DATA_OBJECTS:
                found.add(DELETES_DATA)
        elif isinstance(node, ast.TruncateStmt):
            found |= {DELETES_DATA, ACCESS_EXCLUSIVE}
        elif isinstance(node, ast.DeleteStmt):
            found.add(DELETES_DATA)
        elif isinstance(node, (ast.CreatePolicyStmt, ast.AlterPolicyStmt)):
            found.add(ACCESS_EXCLUSIVE)
        elif isinstance(node, ast.CreateTrigStmt):
            found.add(BLOCKS_WRITES)
        elif isinstance(node, ast.RefreshMatViewStmt) and not node.concurrent:
            found.add(ACCESS_EXCLUSIVE)
        elif isinstance(node, (ast.VacuumStmt, ast.CreatedbStmt, ast.ReindexStmt)) and (
                not isinstance(node, ast.ReindexStmt) or any(
                    getattr(p, "defname", "") == "concurrently" for p in node.params or ())):
            found.add(NOT_IN_TRANSACTION)
    return tuple(sorted(found))


def tables_created(sql: str) -> set[str]:
    """Tables a statement creates: hazards on them do not matter (they are new and empty)."""
    statements = parse_statements(sql)
    if statements is None:
        return set()
    created = set()
    for raw in statements:
        if isinstance(raw.stmt, ast.CreateStmt):
            rel = raw.stmt.relation
            created.add(_name(rel.schemaname or "public", rel.relname))
        elif isinstance(raw.stmt, ast.CreateTableAsStmt):
            rel = raw.stmt.into.rel
            created.add(_name(rel.schemaname or "public", rel.relname))
    return created


def target_table(sql: str) -> str | None:
    """The existing table a statement works on, when it has one."""
    statements = parse_statements(sql)
    if statements is None:
        return None
    if len(statements) != 1:
        return None
    node = statements[0].stmt
    rel = None
    if isinstance(node, ast.AlterTableStmt):
        rel = node.relation
    elif isinstance(node, ast.IndexStmt):
        rel = node.relation
    elif isinstance(node, (ast.CreatePolicyStmt, ast.AlterPolicyStmt)):
        rel = node.table
    elif isinstance(node, ast.CreateTrigStmt):
        rel = node.relation
    if rel is None:
        return None
    return _name(rel.schemaname or "public", rel.relname)
