"""Stage A3 (pull): what each dumped statement is about, read from its parse tree (pglast's JSON).

A statement defines an object (a table, a view, a function, ...) or hangs on one (an index, a trigger,
a comment on a column hangs on its table). The layout puts it in that object's file, so it needs the
object's name; for a few kinds it also needs what the statement does (a foreign key goes last, row
security goes with the policies, an ATTACH PARTITION names the partition and its bounds).
"""

from __future__ import annotations

import dataclasses

Name = tuple[str, str]  # (schema, name) as the database spells them

# What a statement does, where that decides its file (the layout's concern).
DEFINES = "defines"
FOREIGN_KEY = "foreign key"
ROW_SECURITY = "row security"
POLICY = "policy"
ATTACH = "attach partition"
INDEX_ATTACH = "attach index"

_ROW_SECURITY_COMMANDS = frozenset({"AT_EnableRowSecurity", "AT_DisableRowSecurity", "AT_ForceRowSecurity",
                                    "AT_NoForceRowSecurity"})
_KEY_CONSTRAINTS = frozenset({"CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION"})
# Objects that hang on a relation, named [schema, relation, object] in COMMENT.
_ON_RELATION = frozenset({"OBJECT_COLUMN", "OBJECT_TABCONSTRAINT", "OBJECT_TRIGGER", "OBJECT_RULE"})
_RELATIONS = frozenset({"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE"})
_FUNCTIONS = frozenset({"OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_AGGREGATE", "OBJECT_ROUTINE"})
_TYPES = frozenset({"OBJECT_TYPE", "OBJECT_DOMAIN", "OBJECT_DOMCONSTRAINT"})


@dataclasses.dataclass(frozen=True)
class Subject:
    """kind: what `name` is: "relation" (a table, view, materialized view or partition), "index",
    "sequence", "function", "type", "schema", or "" when the statement is about none of them."""

    kind: str
    name: Name | None
    role: str = ""  # DEFINES, FOREIGN_KEY, ROW_SECURITY, POLICY, ATTACH, INDEX_ATTACH, or ""
    relation_kind: str = ""  # with DEFINES on a relation: "table" or "view"
    child: Name | None = None  # ATTACH: the partition; INDEX_ATTACH: the partition's index
    bound: dict | None = None  # ATTACH (and CREATE TABLE ... PARTITION OF): the partition's bounds
    parent: Name | None = None  # CREATE TABLE ... PARTITION OF: the partitioned table
    index: Name | None = None  # the index this statement creates (CREATE INDEX, or a key constraint's)
    constraint: str | None = None  # the constraint it adds (ALTER TABLE ... ADD CONSTRAINT)
    sequence: Name | None = None  # an identity's sequence (ALTER TABLE ... ADD GENERATED ... AS IDENTITY)
    owner: Name | None = None  # ALTER SEQUENCE ... OWNED BY: the table
    references: Name | None = None  # FOREIGN_KEY: the referenced table


def _strings(items) -> tuple[str, ...]:
    return tuple(item["String"]["sval"] for item in items if "String" in item)


def qualified(items) -> Name:
    """(schema, name) of a name list; pg_dump qualifies every name it writes (search_path is empty)."""
    parts = _strings(items)
    return (parts[-2] if len(parts) > 1 else "public", parts[-1])


def relation(range_var: dict) -> Name:
    return (range_var.get("schemaname") or "public", range_var["relname"])


def _list(node: dict) -> list:
    return node.get("List", {}).get("items", [])


def subject_of(node_type: str, node: dict) -> Subject:
    reader = _READERS.get(node_type)
    return reader(node) if reader else Subject("", None)


def _create_table(node: dict) -> Subject:
    name = relation(node["relation"])
    if node.get("partbound"):
        return Subject("relation", name, DEFINES, "table", bound=node["partbound"],
                       parent=relation(node["inhRelations"][0]["RangeVar"]))
    return Subject("relation", name, DEFINES, "table")


def _alter_table(node: dict) -> Subject:
    name = relation(node["relation"])
    commands = [c["AlterTableCmd"] for c in node.get("cmds", ()) if "AlterTableCmd" in c]
    if node.get("objtype") == "OBJECT_INDEX":
        for command in commands:
            if command.get("subtype") == "AT_AttachPartition":
                return Subject("index", name, INDEX_ATTACH, child=relation(command["def"]["PartitionCmd"]["name"]))
        return Subject("index", name)
    if commands and all(c.get("subtype") in _ROW_SECURITY_COMMANDS for c in commands):
        return Subject("relation", name, ROW_SECURITY)
    for command in commands:
        definition = command.get("def", {})
        if command.get("subtype") == "AT_AttachPartition":
            partition = definition["PartitionCmd"]
            return Subject("relation", name, ATTACH, child=relation(partition["name"]), bound=partition.get("bound"))
        constraint = definition.get("Constraint", {})
        if constraint.get("contype") == "CONSTR_FOREIGN":
            return Subject("relation", name, FOREIGN_KEY, constraint=constraint.get("conname"),
                           references=relation(constraint["pktable"]))
        if constraint.get("contype") in _KEY_CONSTRAINTS and constraint.get("conname"):
            # The key's index takes the constraint's name (also one adopted USING INDEX).
            return Subject("relation", name, constraint=constraint["conname"], index=(name[0], constraint["conname"]))
        if constraint.get("contype") == "CONSTR_IDENTITY":
            for option in constraint.get("options", ()):
                if option.get("DefElem", {}).get("defname") == "sequence_name":
                    return Subject("relation", name, sequence=qualified(_list(option["DefElem"]["arg"])))
        if constraint.get("conname"):
            return Subject("relation", name, constraint=constraint["conname"])
    return Subject("relation", name)


def _alter_sequence(node: dict) -> Subject:
    name = relation(node["sequence"])
    for option in node.get("options", ()):
        element = option.get("DefElem", {})
        if element.get("defname") == "owned_by":
            owner = _strings(_list(element["arg"]))
            if len(owner) >= 3:  # [schema, table, column]; OWNED BY NONE is one word
                return Subject("sequence", name, owner=(owner[-3], owner[-2]))
    return Subject("sequence", name)


def _define(node: dict) -> Subject:
    kind = "function" if node.get("kind") == "OBJECT_AGGREGATE" else "type"
    return Subject(kind, qualified(node["defnames"]), DEFINES)


def _comment(node: dict) -> Subject:
    objtype, target = node.get("objtype", ""), node.get("object", {})
    if objtype in _RELATIONS:
        return Subject("relation", qualified(_list(target)))
    if objtype in _ON_RELATION or objtype == "OBJECT_POLICY":
        schema, table, *rest = _strings(_list(target))
        return Subject("relation", (schema, table), POLICY if objtype == "OBJECT_POLICY" else "",
                       constraint=rest[-1] if objtype == "OBJECT_TABCONSTRAINT" else None)
    return _named_object(objtype, target)


def _named_object(objtype: str, target: dict) -> Subject:
    """A sequence, index, function, type or schema as COMMENT and GRANT name it."""
    if "RangeVar" in target:
        return Subject("sequence" if objtype == "OBJECT_SEQUENCE" else "relation", relation(target["RangeVar"]))
    if objtype in ("OBJECT_SEQUENCE", "OBJECT_INDEX"):
        return Subject(objtype.removeprefix("OBJECT_").lower(), qualified(_list(target)))
    if objtype in _FUNCTIONS:
        return Subject("function", qualified(target["ObjectWithArgs"]["objname"]))
    if objtype in _TYPES:
        items = _list(target) or [target]
        type_name = items[0].get("TypeName", {}).get("names") or items
        return Subject("type", qualified(type_name))
    if objtype == "OBJECT_SCHEMA":
        return Subject("schema", (target["String"]["sval"], ""))
    return Subject("", None)


def _grant(node: dict) -> Subject:
    objects = node.get("objects") or [{}]
    objtype = node.get("objtype", "")
    if objtype == "OBJECT_TABLE" and "RangeVar" in objects[0]:
        return Subject("relation", relation(objects[0]["RangeVar"]))
    return _named_object(objtype, objects[0])


_READERS = {
    "CreateStmt": _create_table,
    "ViewStmt": lambda node: Subject("relation", relation(node["view"]), DEFINES, "view"),
    "CreateTableAsStmt": lambda node: Subject("relation", relation(node["into"]["rel"]), DEFINES, "view"),
    "CreateSeqStmt": lambda node: Subject("sequence", relation(node["sequence"]), DEFINES),
    "AlterSeqStmt": _alter_sequence,
    "CreateFunctionStmt": lambda node: Subject("function", qualified(node["funcname"]), DEFINES),
    "DefineStmt": _define,
    "CreateEnumStmt": lambda node: Subject("type", qualified(node["typeName"]), DEFINES),
    "CreateRangeStmt": lambda node: Subject("type", qualified(node["typeName"]), DEFINES),
    "CreateDomainStmt": lambda node: Subject("type", qualified(node["domainname"]), DEFINES),
    "CompositeTypeStmt": lambda node: Subject("type", relation(node["typevar"]), DEFINES),
    "AlterEnumStmt": lambda node: Subject("type", qualified(node["typeName"])),
    "AlterDomainStmt": lambda node: Subject("type", qualified(node["typeName"])),
    "CreateSchemaStmt": lambda node: Subject("schema", (node["schemaname"], ""), DEFINES),
    "IndexStmt": lambda node: Subject("relation", relation(node["relation"]),
                                      index=(relation(node["relation"])[0], node.get("idxname", ""))),
    "CreateTrigStmt": lambda node: Subject("relation", relation(node["relation"])),
    "RuleStmt": lambda node: Subject("relation", relation(node["relation"])),
    "CreateStatsStmt": lambda node: Subject("relation", relation(node["relations"][0]["RangeVar"])),
    "CreatePolicyStmt": lambda node: Subject("relation", relation(node["table"]), POLICY),
    "AlterPolicyStmt": lambda node: Subject("relation", relation(node["table"]), POLICY),
    "AlterTableStmt": _alter_table,
    "CommentStmt": _comment,
    "GrantStmt": _grant,
}
