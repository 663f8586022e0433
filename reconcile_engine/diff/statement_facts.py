"""Stage 4 (diff): reading a statement once, at the boundary where SQL text enters the pipeline (migra's
output, a correction's statement, a data step, a plan file read back), into plain Facts.

PostgreSQL's own parser (pglast) gives the parse tree as JSON; reading that JSON into dicts costs an
eighth of building pglast's Python tree, which matters for a first plan of 20,000 statements. The
facts keep only what later stages ask; the tree is dropped. Names and node types are interned: a first
plan's tens of thousands of facts repeat them.
"""

from __future__ import annotations

import functools
import json
from sys import intern

from pglast.parser import parse_sql_json
from pglast.printers.dml import system_types

from ..sqltext import quote_ident
from .operations import UNPARSED, AlterAction, Facts, Operation

# Functions whose value is fixed for the statement: a default calling only these fills without a rewrite.
_CLOCK_FUNCTIONS = ("now", "statement_timestamp", "transaction_timestamp")


def operation(sql: str, origin: str, *, commit_after: bool = False, online_step: bool = False,
              batch_rows: int = 0) -> Operation:
    """An operation of `sql`, its facts read from its parse tree."""
    return Operation(sql, origin, read_facts(sql), commit_after, online_step, batch_rows)


def read_facts(sql: str) -> Facts:
    try:
        text = parse_sql_json(sql)
    except Exception:  # pglast raises its ParseError, and others on input it cannot represent
        return UNPARSED
    # Walking a tree for function calls costs a third of reading it: only when the JSON has one
    # (a key is always written "FuncCall"; the text of a string literal would be escaped).
    calls = '"FuncCall"' in text
    facts = tuple(_statement_facts(raw.get("stmt", {}), calls) for raw in json.loads(text).get("stmts", []))
    if len(facts) == 1:
        return facts[0]
    return Facts("", parts=facts, creates=frozenset().union(*(f.creates for f in facts)),
                 transaction_control=any(f.transaction_control for f in facts))


@functools.lru_cache(maxsize=1024)
def _set_of(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(map(intern, names))


def _names(names) -> frozenset[str]:
    """A set of names, shared by every fact that has the same (each frozenset costs 216 bytes, empty
    ones too, and a first plan's tables mostly repeat the same few column types)."""
    return _set_of(tuple(sorted(set(names))))


def _unwrap(value: dict) -> tuple[str, dict]:
    """{"NodeType": {fields}} -> ("NodeType", fields)."""
    (node, fields), = value.items()
    return intern(node), fields


def _rangevar(value: dict | None) -> str | None:
    """A RangeVar (bare or wrapped) as written: schema.name, or name."""
    if not value:
        return None
    value = value.get("RangeVar", value)
    return intern(".".join(p for p in (value.get("schemaname"), value.get("relname")) if p))


def qualified(name: str | None) -> str | None:
    """schema.name, unqualified names taken to be in public (migra always qualifies)."""
    return name if name is None or "." in name else f"public.{name}"


def _svals(items) -> list[str]:
    return [item["String"]["sval"] for item in items or () if "String" in item]


def type_text(type_name: dict) -> str:
    """A TypeName as PostgreSQL's printer writes it (pg_catalog.int8 -> bigint, varchar(20), text[])."""
    names = _svals(type_name.get("names"))
    dotted = ".".join(names)
    prefix, suffix = system_types.get(dotted, (None, ""))
    text = prefix or ('"char"' if dotted == "char" else ".".join(quote_ident(n) for n in names))
    modifiers = [_constant(m) for m in type_name.get("typmods") or ()]
    if modifiers and not (dotted == "pg_catalog.bpchar" and modifiers == ["1"]):
        text += "(" + ", ".join(modifiers) + ")"
    text += suffix
    for bound in type_name.get("arrayBounds") or ():
        size = bound.get("Integer", {}).get("ival", 0)
        text += f"[{size}]" if size >= 0 else "[]"
    return text


def _constant(value: dict) -> str:
    node, fields = _unwrap(value)
    if node == "A_Const":
        if "ival" in fields:
            return str(fields["ival"].get("ival", 0))
        if "sval" in fields:
            return fields["sval"].get("sval", "")
        return "0" if not fields.get("isnull") else "NULL"
    return "?"


def _object_name(value: dict) -> str:
    """What a DROP or COMMENT names: a dotted name, a function with its argument types, a type."""
    node, fields = _unwrap(value)
    if node == "List":
        return ".".join(_svals(fields.get("items")))
    if node == "String":
        return fields.get("sval", "")
    if node == "ObjectWithArgs":
        args = ", ".join(type_text(_unwrap(a)[1]) for a in fields.get("objargs") or ())
        return ".".join(_svals(fields.get("objname"))) + f"({args})"
    if node == "TypeName":
        return type_text(fields)
    return "?"


def _function_calls(tree) -> set[str]:
    """The names (last part) of every function called anywhere in the tree."""
    found, stack = set(), [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            call = value.get("FuncCall")
            if isinstance(call, dict):
                names = _svals(call.get("funcname"))
                if names:
                    found.add(names[-1])
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def _default_may_rewrite(column: dict) -> bool:
    """Since PostgreSQL 11 a constant or stable default fills without a rewrite; a volatile one rewrites.
    The parser cannot tell a function's volatility, so any function call but the clock counts as volatile."""
    for item in column.get("constraints") or ():
        constraint = item.get("Constraint", {})
        kind = constraint.get("contype")
        if kind in ("CONSTR_GENERATED", "CONSTR_IDENTITY"):
            return True
        if kind == "CONSTR_DEFAULT":
            expr = constraint.get("raw_expr") or {}
            while "TypeCast" in expr:
                expr = expr["TypeCast"].get("arg") or {}
            if "FuncCall" in expr:
                names = _svals(expr["FuncCall"].get("funcname"))
                return bool(names) and names[-1] not in _CLOCK_FUNCTIONS
    return False


def _tree(value) -> str | None:
    """A part of the parse tree kept for a later stage as JSON text (a plain value), or None."""
    return json.dumps(value, sort_keys=True) if value else None


def _column_constraints(column: dict) -> set[str]:
    return {item.get("Constraint", {}).get("contype") for item in column.get("constraints") or ()}


def _alter_action(command: dict) -> AlterAction:
    subtype = intern(command.get("subtype", ""))
    definition = command.get("def") or {}
    name = command.get("name")
    if "ColumnDef" in definition:
        column = definition["ColumnDef"]
        if subtype == "AT_AddColumn":
            kinds = _column_constraints(column)
            return AlterAction(subtype, column.get("colname"), default_may_rewrite=_default_may_rewrite(column),
                               not_null=bool(kinds & {"CONSTR_NOTNULL", "CONSTR_PRIMARY"}),
                               has_default=bool(kinds & {"CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED"}))
        if subtype == "AT_AlterColumnType":
            return AlterAction(subtype, name, new_type=type_text(column.get("typeName") or {}),
                               type_name=_tree(column.get("typeName")), expression=_tree(column.get("raw_default")))
    if "ReplicaIdentityStmt" in definition:  # REPLICA IDENTITY USING INDEX name (else FULL, NOTHING, DEFAULT)
        return AlterAction(subtype, name, using_index=definition["ReplicaIdentityStmt"].get("name"))
    if subtype == "AT_ColumnDefault":
        return AlterAction(subtype, name, sets_default=bool(definition))
    if "PartitionCmd" in definition:
        partition = definition["PartitionCmd"]
        return AlterAction(subtype, name, partition=_rangevar(partition.get("name")),
                           concurrent=bool(partition.get("concurrent")), bound=_tree(partition.get("bound")))
    if "Constraint" in definition:
        constraint = definition["Constraint"]
        foreign = constraint.get("contype") == "CONSTR_FOREIGN"
        return AlterAction(subtype, name or constraint.get("conname"), constraint_type=constraint.get("contype"),
                           using_index=constraint.get("indexname"), not_valid=bool(constraint.get("skip_validation")),
                           references=qualified(_rangevar(constraint.get("pktable"))),
                           keys=tuple(_svals(constraint.get("fk_attrs" if foreign else "keys"))),
                           referenced_keys=tuple(_svals(constraint.get("pk_attrs"))),
                           match_full=constraint.get("fk_matchtype") == "f",
                           nulls_not_distinct=bool(constraint.get("nulls_not_distinct")),
                           expression=_tree(constraint.get("raw_expr")))
    return AlterAction(subtype, name)


def _statement_facts(statement: dict, calls: bool) -> Facts:
    if not statement:
        return UNPARSED
    node, f = _unwrap(statement)
    if node == "AlterTableStmt":
        return Facts(node, _rangevar(f.get("relation")), object_type=intern(f.get("objtype", "")) or None,
                     actions=tuple(_alter_action(c.get("AlterTableCmd", {})) for c in f.get("cmds") or ()),
                     functions_called=_names(_function_calls(f) if calls else ()))
    if node == "CreateStmt":
        relation = _rangevar(f.get("relation"))
        parents = f.get("inhRelations") or ()
        keys = ((f.get("partspec") or {}).get("PartitionSpec") or f.get("partspec") or {}).get("partParams") or ()
        columns = tuple(k.get("PartitionElem", {}).get("name") for k in keys)
        return Facts(node, relation, partition_of=bool(f.get("partbound")), creates=frozenset({qualified(relation)}),
                     functions_called=_names(_function_calls(f) if calls else ()), bound=_tree(f.get("partbound")),
                     partition_parent=_rangevar(parents[0]) if f.get("partbound") and parents else None,
                     partition_by=columns if all(columns) else (),
                     column_types=_names(".".join(_svals(e["ColumnDef"].get("typeName", {}).get("names")))
                                         for e in f.get("tableElts") or () if "ColumnDef" in e))
    if node == "CreateTableAsStmt":
        into = f.get("into") or {}
        relation = _rangevar(into.get("rel"))
        return Facts(node, relation, object_type=f.get("objtype"), skip_data=bool(into.get("skipData")),
                     creates=frozenset({qualified(relation)}))
    if node == "IndexStmt":
        return Facts(node, _rangevar(f.get("relation")), name=f.get("idxname"), concurrent=bool(f.get("concurrent")),
                     unique=bool(f.get("unique")), nulls_not_distinct=bool(f.get("nulls_not_distinct")),
                     index_keys=tuple(_tree(e) for e in f.get("indexParams") or ()),
                     predicate=_tree(f.get("whereClause")))
    if node in ("CreatePolicyStmt", "AlterPolicyStmt"):
        return Facts(node, _rangevar(f.get("table")), name=f.get("policy_name"))
    if node == "CreateTrigStmt":
        return Facts(node, _rangevar(f.get("relation")), name=f.get("trigname"))
    if node == "ViewStmt":
        return Facts(node, _rangevar(f.get("view")))
    if node == "RenameStmt":  # ALTER ... RENAME (TO | COLUMN | CONSTRAINT | POLICY): name is the new name
        relation = _rangevar(f["relation"]) if f.get("relation") else None
        return Facts(node, relation, name=f.get("newname"), object_type=f.get("renameType"),
                     objects=(f["subname"],) if f.get("subname") else ())
    if node == "DropStmt":
        return Facts(node, objects=tuple(_object_name(o) for o in f.get("objects") or ()),
                     object_type=f.get("removeType"), cascade=f.get("behavior") == "DROP_CASCADE",
                     concurrent=bool(f.get("concurrent")))
    if node == "TruncateStmt":
        return Facts(node, objects=tuple(_rangevar(r) for r in f.get("relations") or ()))
    if node in ("DeleteStmt", "UpdateStmt"):
        return Facts(node, _rangevar(f.get("relation")))
    if node == "InsertStmt":
        select = (f.get("selectStmt") or {}).get("SelectStmt") or {}
        sources = select.get("fromClause") or ()
        source = _rangevar(sources[0]) if len(sources) == 1 and "RangeVar" in sources[0] else None
        return Facts(node, _rangevar(f.get("relation")), source=source)
    if node == "CommentStmt":
        return Facts(node, objects=(_object_name(f["object"]),) if f.get("object") else (),
                     object_type=f.get("objtype"))
    if node == "RefreshMatViewStmt":
        return Facts(node, _rangevar(f.get("relation")), concurrent=bool(f.get("concurrent")),
                     skip_data=bool(f.get("skipData")))
    if node == "ReindexStmt":
        concurrently = any(p.get("DefElem", {}).get("defname") == "concurrently" for p in f.get("params") or ())
        return Facts(node, _rangevar(f.get("relation")), concurrent=concurrently)
    if node == "AlterObjectSchemaStmt":
        return Facts(node, _rangevar(f.get("relation")), object_type=f.get("objectType"), new_schema=f.get("newschema"))
    if node == "DoStmt":  # name: what its first comment says it does (the summary a plan shows)
        body = next((a["DefElem"]["arg"].get("String", {}).get("sval", "") for a in f.get("args") or ()
                     if a.get("DefElem", {}).get("defname") == "as"), "")
        said = next((line.strip()[2:].strip() for line in body.splitlines() if line.strip().startswith("--")), None)
        return Facts(node, name=said)
    if node == "CreateSchemaStmt":
        return Facts(node, name=f.get("schemaname"))
    if node == "VariableSetStmt" and f.get("is_local"):
        return Facts(node, name=f.get("name"))
    if node == "LockStmt":  # name: the lock mode (LOCK TABLE ... IN ACCESS EXCLUSIVE MODE: "AccessExclusiveLock")
        modes = {1: "AccessShareLock", 8: "AccessExclusiveLock"}
        return Facts(node, name=modes.get(f.get("mode", 8), str(f.get("mode"))),
                     objects=tuple(qualified(_rangevar(r)) for r in f.get("relations") or ()))
    if node == "CreateFunctionStmt":
        return Facts(node, function_created=(_svals(f.get("funcname")) or [None])[-1])
    return Facts(node, transaction_control=node == "TransactionStmt")
