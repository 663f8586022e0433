"""Stage 5a: what each planned statement does and whether it destroys data, judged from its facts.

The facts come from PostgreSQL's own parser (diff/statement_facts.py, read once per statement); the
current catalog snapshot gives the column types that a type change starts from. No regular
expressions over SQL, and no second parse.
"""

from __future__ import annotations

import dataclasses

from ..diff.operations import Facts
from ..diff.statement_facts import qualified
from ..inspection.snapshot import CatalogSnapshot

# Object kinds whose DROP deletes stored data (or a counter that cannot be rebuilt).
_DATA_OBJECTS = {
    "OBJECT_TABLE": "table",
    "OBJECT_SCHEMA": "schema",
    "OBJECT_SEQUENCE": "sequence",
    "OBJECT_FOREIGN_TABLE": "foreign table",
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
    return current.objects.get(("column", f"{qualified(table)}.{column}"))


def _alter_table(facts: Facts, current: CatalogSnapshot | None) -> Classification:
    table = facts.relation
    actions, destructive, rows_of = [], None, None
    for action in facts.actions:
        subtype = action.subtype
        if subtype == "AT_DropColumn":
            column = _column_text(current, table, action.name)
            if column is not None and " generated always as (" in column:
                actions.append(f"drop generated column {action.name} (derived: its values are computed again)")
                continue
            actions.append(f"drop column {action.name}")
            destructive = f"drops column {table}.{action.name} and its data"
            rows_of = table
        elif subtype == "AT_AlterColumnType":
            actions.append(f"change type of {action.name} to {action.new_type}")
            old = _column_text(current, table, action.name)
            if old is None or not _is_widening(old, action.new_type):
                was = f" from {_full_type(old) if old else 'its current type'}"
                destructive = f"changes {table}.{action.name}{was} to {action.new_type}: values may be lost or rejected"
                rows_of = table
        elif subtype == "AT_AddColumn":
            actions.append(f"add column {action.name}")
        elif subtype == "AT_ColumnDefault":
            actions.append(f"{'set' if action.sets_default else 'drop'} default of {action.name}")
        elif subtype == "AT_DetachPartition":
            actions.append(f"detach partition {action.partition}")
            rows_of = action.partition
        else:
            label = subtype.removeprefix("AT_")
            actions.append(f"{_humanize(label)}{' ' + action.name if action.name else ''}")
    return Classification(f"alter table {table}: {', '.join(actions)}", destructive, rows_of)


def _humanize(camel: str) -> str:
    out = ""
    for ch in camel:
        out += (" " + ch.lower()) if ch.isupper() and out else ch.lower()
    return out


def _kind(object_type: str | None) -> str:
    kind = (object_type or "OBJECT_?").removeprefix("OBJECT_").lower().replace("_", " ")
    return {"matview": "materialized view", "tabconstraint": "constraint"}.get(kind, kind)


def classify(sql: str, facts: Facts, current: CatalogSnapshot | None = None) -> Classification:
    """What the statement does, in a line, and why it can lose data (None when it cannot)."""
    if not facts.parsed:
        return Classification(_first_line(sql), "could not be parsed, so it cannot be shown to be safe")
    if facts.parts:
        parts = [classify(sql, part, current) for part in facts.parts]
        reasons = [p.destructive for p in parts if p.destructive]
        return Classification("; ".join(p.summary for p in parts), "; ".join(reasons) or None)
    node = facts.node
    if node == "DropStmt":
        kind = _kind(facts.object_type)
        targets = ", ".join(facts.objects)
        destructive = None
        # DROP SCHEMA without CASCADE only drops an empty schema (PostgreSQL refuses any other).
        if facts.object_type in _DATA_OBJECTS and (facts.cascade or facts.object_type != "OBJECT_SCHEMA"):
            destructive = f"drops {_DATA_OBJECTS[facts.object_type]} {targets} and everything in it"
        if facts.cascade:
            destructive = (destructive or f"drops {kind} {targets}") + " with CASCADE"
        rows_of = targets if facts.object_type == "OBJECT_TABLE" and len(facts.objects) == 1 else None
        return Classification(f"drop {kind} {targets}", destructive, rows_of)
    if node == "TruncateStmt":
        return Classification("truncate " + ", ".join(facts.objects), "deletes every row")
    if node == "DeleteStmt":
        return Classification(f"delete from {facts.relation}", "deletes rows")
    if node == "UpdateStmt":
        return Classification(f"update {qualified(facts.relation)}", None, qualified(facts.relation))
    if node == "InsertStmt":
        source = f" from {qualified(facts.source)}" if facts.source else ""
        return Classification(f"insert into {qualified(facts.relation)}{source}", None, qualified(facts.source))
    if node == "CreateFunctionStmt":
        return Classification(f"create function {facts.function_created}", None)
    if node == "CreateTrigStmt":
        return Classification(f"create trigger {facts.name} on {facts.relation}", None)
    if node == "CreateSchemaStmt":
        return Classification(f"create schema {facts.name}", None)
    if node == "DoStmt" and facts.name:
        return Classification(facts.name[:120], None)
    if node == "VariableSetStmt" and facts.name:
        return Classification(f"set {facts.name} for the rest of this transaction", None)
    if node == "LockStmt":
        return Classification(f"lock {', '.join(facts.objects)}", None)
    if node == "AlterObjectSchemaStmt" and facts.relation:
        return Classification(f"move {_kind(facts.object_type)} {facts.relation} to schema {facts.new_schema}", None)
    if node == "AlterTableStmt":
        return _alter_table(facts, current)
    if node == "CreateStmt":
        return Classification(f"create {'partition' if facts.partition_of else 'table'} {facts.relation}", None)
    if node == "IndexStmt":
        return Classification(f"create index {facts.name} on {facts.relation}", None)
    if node == "CreatePolicyStmt":
        return Classification(f"create policy {facts.name} on {facts.relation}", None)
    if node == "CreateTableAsStmt":
        return Classification(f"create materialized view {facts.relation}", None)
    if node == "ViewStmt":
        return Classification(f"create view {facts.relation}", None)
    if node == "CommentStmt":
        return Classification(f"comment on {_kind(facts.object_type)} {', '.join(facts.objects)}", None)
    if node == "RenameStmt" and facts.relation:
        what = f"{_kind(facts.object_type)} {facts.relation}" + "".join(f".{name}" for name in facts.objects)
        if facts.object_type in ("OBJECT_POLICY", "OBJECT_TABCONSTRAINT"):
            what = f"{_kind(facts.object_type)} {facts.objects[0]} on {facts.relation}"
        return Classification(f"rename {what} to {facts.name}", None)
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
_WEAKER_ALTERS = {"AT_ValidateConstraint", "AT_AttachPartition"}
_INDEX_CONSTRAINTS = ("CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION")
_ACCESS_EXCLUSIVE_DROPS = ("OBJECT_TABLE", "OBJECT_INDEX", "OBJECT_MATVIEW", "OBJECT_POLICY", "OBJECT_TRIGGER")
_REWRITING_ALTERS = ("AT_SetLogged", "AT_SetUnLogged", "AT_SetTableSpace")


def _takes_access_exclusive(action) -> bool:
    if action.subtype in _WEAKER_ALTERS:
        return False
    # Adding a foreign key takes SHARE ROW EXCLUSIVE on both tables: writes wait, reads do not.
    return not (action.subtype == "AT_AddConstraint" and action.constraint_type == "CONSTR_FOREIGN")


def _type_change_rewrites(old: str | None, new_type: str) -> bool:
    """varchar(n) -> varchar(m >= n), varchar -> text and dropping a limit are catalog-only changes."""
    if old is None or not _is_widening(old, new_type):
        return True
    old_base = _base_type(old)
    return old_base not in ("character varying", "text", "numeric", "bit varying") or new_type.lower().startswith(
        ("int", "big", "small", "double", "real", "pg_catalog.int", "pg_catalog.float"))


def _alter_table_hazards(facts: Facts, current) -> set[str]:
    found = set()
    table = facts.relation
    for action in facts.actions:
        subtype = action.subtype
        found.add(ACCESS_EXCLUSIVE if _takes_access_exclusive(action) else BLOCKS_WRITES)
        if subtype == "AT_AddColumn" and action.default_may_rewrite:
            found.add(REWRITES_TABLE)
        elif subtype == "AT_DropColumn":
            if " generated always as (" not in (_column_text(current, table, action.name) or ""):
                found.add(DELETES_DATA)
        elif subtype == "AT_AlterColumnType":
            old = _column_text(current, table, action.name)
            if _type_change_rewrites(old, action.new_type):
                found.add(REWRITES_TABLE)
            if old is None or not _is_widening(old, action.new_type):
                found.add(DELETES_DATA)
        elif subtype == "AT_SetNotNull":
            found.add(SCANS_TO_VALIDATE)
        elif subtype == "AT_AddConstraint":
            if action.constraint_type in _INDEX_CONSTRAINTS and not action.using_index:
                found.add(BUILDS_INDEX)
            if action.constraint_type in ("CONSTR_CHECK", "CONSTR_FOREIGN") and not action.not_valid:
                found.add(SCANS_TO_VALIDATE)
        elif subtype in _WEAKER_ALTERS:
            found.discard(BLOCKS_WRITES)  # SHARE UPDATE EXCLUSIVE: reads and writes go on
            found.add(SCANS_TO_VALIDATE)
        elif subtype == "AT_DetachPartition" and action.concurrent:
            found.discard(ACCESS_EXCLUSIVE)
            found.add(NOT_IN_TRANSACTION)
        elif subtype in _REWRITING_ALTERS:
            found.add(REWRITES_TABLE)
    return found


def hazards_of(facts: Facts, current: CatalogSnapshot | None = None) -> tuple[str, ...]:
    """What running this statement does to a live, busy table (sorted, for stable output)."""
    found: set[str] = set()
    for part in facts.parts or (facts,):
        node = part.node
        if node == "AlterTableStmt":
            found |= _alter_table_hazards(part, current)
        elif node == "IndexStmt":
            found.add(NOT_IN_TRANSACTION if part.concurrent else BUILDS_INDEX)
        elif node == "DropStmt":
            if part.concurrent:
                found.add(NOT_IN_TRANSACTION)
            elif part.object_type in _ACCESS_EXCLUSIVE_DROPS:
                found.add(ACCESS_EXCLUSIVE)
            if part.object_type in _DATA_OBJECTS and (part.cascade or part.object_type != "OBJECT_SCHEMA"):
                found.add(DELETES_DATA)
        elif node == "TruncateStmt":
            found |= {DELETES_DATA, ACCESS_EXCLUSIVE}
        elif node == "DeleteStmt":
            found.add(DELETES_DATA)
        elif node in ("CreatePolicyStmt", "AlterPolicyStmt", "RenameStmt"):
            found.add(ACCESS_EXCLUSIVE)  # a rename only changes the catalog, but waits for every reader
        elif node == "CreateTrigStmt":
            found.add(BLOCKS_WRITES)
        elif node == "LockStmt" and part.name == "AccessExclusiveLock":
            found.add(ACCESS_EXCLUSIVE)
        elif node == "RefreshMatViewStmt" and not part.concurrent:
            found.add(ACCESS_EXCLUSIVE)
        elif node in ("VacuumStmt", "CreatedbStmt") or (node == "ReindexStmt" and part.concurrent):
            found.add(NOT_IN_TRANSACTION)
    return tuple(sorted(found))


# The lock each hazard implies, strongest first: what a concurrent query waits behind.
_LOCK_LEVELS = (
    (ACCESS_EXCLUSIVE, "ACCESS EXCLUSIVE"),
    (BLOCKS_WRITES, "SHARE ROW EXCLUSIVE"),
    (BUILDS_INDEX, "SHARE"),
)


def lock_level(hazards: tuple[str, ...]) -> str | None:
    """The strongest table lock a statement with these hazards takes on a live table (None: none that
    blocks reads or writes)."""
    return next((level for hazard, level in _LOCK_LEVELS if hazard in hazards), None)


def target_table(facts: Facts) -> str | None:
    """The existing table a single statement works on, when it has one."""
    if facts.node in ("AlterTableStmt", "IndexStmt", "CreatePolicyStmt", "AlterPolicyStmt", "CreateTrigStmt"):
        return qualified(facts.relation)
    return None
