"""What the names an expression from a declared statement uses resolve to on the target, as data:
pg_catalog's functions, operators, casts and types, read by pre-flight checks in their read-only
transaction (rehearsal/preflight_checks.py) and judged by inert_expressions.py. Also the names an
expression uses, and the type names and literals written for it. Pure.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from ..sqltext import quote_ident

class NotInert(Exception):
    """Why an expression is not evaluated on the target (the plan says: not checked: <why>)."""


@dataclasses.dataclass(frozen=True)
class Column:
    type: int  # its type's oid (a domain's base type)
    type_name: str  # format_type, for messages
    allowed: bool  # a pg_catalog type or an enum: compared by PostgreSQL's own code only
    missing: str | None = None  # why the check may not read it (retyped earlier in the plan, say)


@dataclasses.dataclass(frozen=True)
class Routine:
    """A pg_catalog function, or an operator (kind "o"; params: left (0 for a prefix one), right)."""

    params: tuple[int, ...]
    result: int
    immutable: bool
    kind: str = "f"  # pg_proc.prokind, "o" for an operator
    returns_set: bool = False
    variadic: int = 0  # pg_proc.provariadic: the variadic element type, 0 when none
    defaults: int = 0


@dataclasses.dataclass(frozen=True)
class Cast:
    source: int
    target: int
    implicit: bool  # castcontext 'i'
    safe: bool  # no function (binary or I/O), or an immutable pg_catalog function


@dataclasses.dataclass(frozen=True)
class Catalog:
    """What the target's catalog says of the names an expression uses (read in the check's transaction)."""

    functions: Mapping[str, tuple[Routine, ...]] = dataclasses.field(default_factory=dict)
    operators: Mapping[str, tuple[Routine, ...]] = dataclasses.field(default_factory=dict)
    casts: tuple[Cast, ...] = ()
    # type text (as type_sql writes it) -> (oid, "builtin" | "enum" | "other"); None: no such type
    types: Mapping[str, tuple[int, str] | None] = dataclasses.field(default_factory=dict)
    pseudo: frozenset[int] = frozenset()  # polymorphic and other pseudo types
    string_types: frozenset[int] = frozenset()  # typcategory 'S': any type casts to and from them by I/O
    arrays: frozenset[int] = frozenset()  # typcategory 'A'

    def cast(self, source: int, target: int, implicit: bool) -> Cast | None:
        return next((c for c in self.casts if c.source == source and c.target == target
                     and (c.implicit or not implicit)), None)

    def all_casts_into_safe(self, target: int, implicit: bool) -> bool:
        return all(c.safe for c in self.casts if c.target == target and (c.implicit or not implicit))

    def cast_safe(self, source, target: int) -> bool:
        """Whether CAST(a value of `source` AS `target`) runs only inert code: no cast at all, a literal's
        input, a binary or I/O cast (built-in types' own input and output), or an immutable pg_catalog
        function. `source` may be "unknown" (a literal) or "any" (not worked out: every cast counts)."""
        if source == "any":
            return self.all_casts_into_safe(target, implicit=False)
        if source in ("unknown", target):
            return True
        cast = self.cast(source, target, implicit=False)
        return cast.safe if cast else bool({source, target} & self.string_types)


@dataclasses.dataclass(frozen=True)
class Names:
    """The names an expression uses, for the caller to look up on the target."""

    functions: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()


def tree(text: str | None) -> dict:
    return json.loads(text) if text else {}


def unwrap(node: dict) -> tuple[str, dict]:
    (kind, fields), = node.items()
    return kind, fields


def strings(items) -> list[str]:
    return [item["String"]["sval"] for item in items or () if "String" in item]


def names_used(node) -> Names:
    """Every function, operator and type name in the tree (looked up whether or not it is allowed)."""
    functions, operators, types, stack = set(), set(), set(), [node]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
            continue
        if not isinstance(value, dict):
            continue
        if "FuncCall" in value:
            functions.update(strings(value["FuncCall"].get("funcname"))[-1:])
        if "A_Expr" in value:
            operators.update(_operator_names(value["A_Expr"]))
        if "TypeCast" in value:
            try:
                types.add(type_sql(value["TypeCast"].get("typeName") or {}))
            except NotInert:
                pass
        stack.extend(value.values())
    return Names(frozenset(functions), frozenset(operators), frozenset(types))


def _operator_names(expr: dict) -> list[str]:
    kind, name = expr.get("kind"), (strings(expr.get("name")) or [""])[-1]
    if kind == "AEXPR_BETWEEN":
        return [">=", "<="]
    if kind == "AEXPR_NOT_BETWEEN":
        return ["<", ">"]
    return [name]


def type_sql(type_name: dict, *, any_schema: bool = False) -> str:
    """A TypeName as SQL written here: pg_catalog.<name> (or, with any_schema, as qualified), integer
    type modifiers, [] per array dimension."""
    names = strings(type_name.get("names"))
    if not names or len(names) > 2 or type_name.get("setof") or type_name.get("pct_type"):
        raise NotInert("a type this check cannot name")
    if len(names) == 2 and names[0] != "pg_catalog" and not any_schema:
        raise NotInert(f"type {'.'.join(names)} is not a built-in type")
    text = ".".join(quote_ident(n) for n in (names if len(names) == 2 else ["pg_catalog", names[0]]))
    modifiers = []
    for modifier in type_name.get("typmods") or ():
        kind, fields = unwrap(modifier)
        if kind != "A_Const" or "ival" not in fields or names[-1] == "interval":
            raise NotInert(f"type {names[-1]} with modifiers this check does not read")
        modifiers.append(str(int(fields["ival"].get("ival", 0))))
    if modifiers:
        text += "(" + ", ".join(modifiers) + ")"
    return text + "[]" * len(type_name.get("arrayBounds") or ())


def literal(text: str) -> str:
    """A string constant that reads the same whatever standard_conforming_strings says."""
    if "\\" in text:
        return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + text.replace("'", "''") + "'"
