"""Expressions from declared statements (a CHECK, a USING, an index key or predicate), evaluated on the
target by pre-flight checks only when provably inert.

A declared file is untrusted input (README, "Security"), and pre-flight checks run on the production
target. So an expression is never sent as written: it is read from pglast's JSON tree, and the SQL that
runs is written here from an allowlist of nodes (column references, constants, casts to built-in types,
boolean and null tests, operators and function calls), every function and operator schema-qualified
to pg_catalog. A call is allowed only when every pg_catalog function or operator PostgreSQL could
resolve it to (on the target's catalog, given the argument types) is IMMUTABLE, and so is every
implicit cast it may need. Anything else raises NotInert, whose reason the plan shows as "not checked".
Pure: the catalog facts come in a Catalog, read by the caller in its read-only transaction.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping

from ..sqltext import quote_ident
from .expression_catalog import (
    Catalog, Column, NotInert, Routine, literal, strings as _strings, type_sql, unwrap as _unwrap,
)

UNKNOWN = "unknown"  # a string literal or NULL: PostgreSQL gives it the type its context asks for
ANY = "any"  # a result whose type is not worked out here: any built-in type, as far as checks go
BOOL, INT4, INT8, NUMERIC = 16, 23, 20, 1700
OPERATOR_CHARACTERS = frozenset("+-*/<>=~!@#%^&|`?")
_TESTS = {"IS_TRUE": "IS TRUE", "IS_NOT_TRUE": "IS NOT TRUE", "IS_FALSE": "IS FALSE",
          "IS_NOT_FALSE": "IS NOT FALSE", "IS_UNKNOWN": "IS UNKNOWN", "IS_NOT_UNKNOWN": "IS NOT UNKNOWN"}
_REFUSED = {"SubLink": "a subquery", "SQLValueFunction": "a clock or session value (CURRENT_DATE, CURRENT_USER...)",
            "ParamRef": "a parameter", "CollateClause": "a COLLATE clause", "CaseExpr": "a CASE expression",
            "RowExpr": "a row constructor", "A_Indirection": "a subscript or field selection"}


class _Emitter:
    def __init__(self, columns: Mapping[str, Column], catalog: Catalog, prefix: str):
        self.columns, self.catalog, self.prefix = columns, catalog, prefix

    def emit(self, node: dict) -> tuple[str, object]:
        """(SQL, its type: an oid, UNKNOWN or ANY) of an allowed node; NotInert for anything else."""
        kind, f = _unwrap(node)
        if kind == "ColumnRef":
            return self.column(f)
        if kind == "A_Const":
            return constant(f)
        if kind == "TypeCast":
            return self.typecast(f)
        if kind == "FuncCall":
            return self.call(f)
        if kind == "A_Expr":
            return self.operator_expression(f)
        if kind == "BoolExpr":
            args = [self.boolean(a) for a in f.get("args") or ()]
            if f.get("boolop") == "NOT_EXPR":
                return f"(NOT {args[0]})", BOOL
            return "(" + (" AND " if f.get("boolop") == "AND_EXPR" else " OR ").join(args) + ")", BOOL
        if kind == "NullTest":
            test = "IS NOT NULL" if f.get("nulltesttype") == "IS_NOT_NULL" else "IS NULL"
            return f"({self.emit(f['arg'])[0]} {test})", BOOL
        if kind == "BooleanTest" and f.get("booltesttype") in _TESTS:
            return f"({self.boolean(f['arg'])} {_TESTS[f['booltesttype']]})", BOOL
        if kind in ("CoalesceExpr", "MinMaxExpr"):
            word = "COALESCE" if kind == "CoalesceExpr" else ("GREATEST" if f.get("op") == "IS_GREATEST" else "LEAST")
            parts, common = self.same_type(f.get("args") or ())
            return f"{word}({', '.join(parts)})", common
        if kind == "A_ArrayExpr":
            parts, _ = self.same_type(f.get("elements") or ())
            return f"ARRAY[{', '.join(parts)}]", ANY
        raise NotInert(f"it holds {_REFUSED.get(kind, kind)}, which is not evaluated on the target")

    def column(self, f: dict) -> tuple[str, object]:
        fields = _strings(f.get("fields"))
        if len(fields) != 1 or len(f.get("fields")) != 1:
            raise NotInert("it names a column this check cannot place")
        column = self.columns.get(fields[0])
        if column is None:
            raise NotInert(f"column {fields[0]} is not on the target's table yet")
        if column.missing:
            raise NotInert(f"column {fields[0]} {column.missing}")
        if not column.allowed:
            raise NotInert(f"column {fields[0]} has type {column.type_name}, not a built-in type")
        return self.prefix + quote_ident(fields[0]), column.type

    def boolean(self, node: dict) -> str:
        sql, kind = self.emit(node)
        if kind not in (BOOL, UNKNOWN, ANY):
            raise NotInert("it uses a value that is not boolean as a condition")
        return sql

    def typecast(self, f: dict) -> tuple[str, object]:
        target = type_sql(f.get("typeName") or {})
        resolved = self.catalog.types.get(target)
        if resolved is None or resolved[1] != "builtin":
            raise NotInert(f"it casts to {target}, which is not a built-in type on the target")
        sql, source = self.emit(f["arg"])
        oid = resolved[0]
        if not self.catalog.cast_safe(source, oid):
            raise NotInert(f"its cast to {target} runs a function that is not immutable")
        return f"CAST({sql} AS {target})", oid

    def call(self, f: dict) -> tuple[str, object]:
        names = _strings(f.get("funcname"))
        if any(f.get(k) for k in ("agg_star", "agg_distinct", "agg_order", "agg_filter", "over", "func_variadic",
                                  "agg_within_group")):
            raise NotInert(f"it calls {'.'.join(names)} as an aggregate or window function")
        if len(names) == 2 and names[0] != "pg_catalog" or len(names) > 2:
            raise NotInert(f"it calls {'.'.join(names)}(), which is not a built-in function")
        args = [self.emit(a) for a in f.get("args") or ()]
        result = self.resolve("function", names[-1], self.catalog.functions.get(names[-1], ()),
                              [t for _, t in args])
        return f"pg_catalog.{quote_ident(names[-1])}({', '.join(s for s, _ in args)})", result

    def operator(self, name: str, left, right) -> tuple[str, object]:
        if not name or not set(name) <= OPERATOR_CHARACTERS or len(name) > 63:
            raise NotInert(f"operator {name} is not a built-in operator")
        args = [0 if left is None else left, right]
        exact = args
        if left is not None and UNKNOWN in args and any(isinstance(t, int) for t in args):
            # PostgreSQL's rule for a binary operator: an unknown literal is taken to be of the other
            # side's type when it looks for an exact match
            known = next(t for t in args if isinstance(t, int))
            exact = [known if t == UNKNOWN else t for t in args]
        return f"OPERATOR(pg_catalog.{name})", self.resolve("operator", name, self.catalog.operators.get(name, ()),
                                                            args, exact)

    def operator_expression(self, f: dict) -> tuple[str, object]:
        kind, names = f.get("kind"), _strings(f.get("name"))
        if len(names) == 2 and names[0] != "pg_catalog" or len(names) > 2:
            raise NotInert(f"operator {'.'.join(names)} is not a built-in operator")
        name = names[-1] if names else ""
        left = self.emit(f["lexpr"]) if f.get("lexpr") else None
        if kind in ("AEXPR_OP", "AEXPR_LIKE", "AEXPR_ILIKE"):
            right = self.emit(f["rexpr"])
            op, result = self.operator(name, left[1] if left else None, right[1])
            return (f"({left[0]} {op} {right[0]})" if left else f"({op} {right[0]})"), result
        if left is None:
            raise NotInert("it uses an operator form this check does not read")
        if kind in ("AEXPR_OP_ANY", "AEXPR_OP_ALL"):
            right_kind, right = _unwrap(f["rexpr"])
            if right_kind == "A_ArrayExpr":
                parts, element = self.same_type(right.get("elements") or ())
                array = f"ARRAY[{', '.join(parts)}]"
            elif right_kind == "A_Const" and "sval" in right:
                array, element = constant(right)[0], UNKNOWN
            else:
                raise NotInert("it compares with an array this check does not read")
            op, _ = self.operator(name, left[1], element)
            return f"({left[0]} {op} {'ANY' if kind == 'AEXPR_OP_ANY' else 'ALL'} ({array}))", BOOL
        items = [self.emit(i) for i in _unwrap(f["rexpr"])[1].get("items") or ()] if "List" in f["rexpr"] else []
        if kind == "AEXPR_IN" and items:
            # x IN (a, b) is x = a OR x = b; x NOT IN (a, b) is x <> a AND x <> b
            tests = [f"{left[0]} {self.operator(name, left[1], t)[0]} {sql}" for sql, t in items]
            return "(" + (" OR " if name == "=" else " AND ").join(tests) + ")", BOOL
        if kind in ("AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN") and len(items) == 2:
            (low, low_type), (high, high_type) = items
            below, above, join = (">=", "<=", "AND") if kind == "AEXPR_BETWEEN" else ("<", ">", "OR")
            return (f"({left[0]} {self.operator(below, left[1], low_type)[0]} {low} {join} "
                    f"{left[0]} {self.operator(above, left[1], high_type)[0]} {high})"), BOOL
        raise NotInert(f"it uses {kind.removeprefix('AEXPR_').replace('_', ' ')}, which this check does not read")

    def same_type(self, nodes) -> tuple[list[str], object]:
        """Arguments that must share a type (COALESCE, an ARRAY): one known type, or none at all."""
        emitted = [self.emit(n) for n in nodes]
        known = {t for _, t in emitted if t != UNKNOWN}
        if not emitted or ANY in known or len(known) > 1:
            raise NotInert("it mixes types that would need a conversion")
        return [sql for sql, _ in emitted], (known.pop() if known else UNKNOWN)

    def resolve(self, what: str, name: str, candidates, args: list, exact_args: list | None = None) -> object:
        """The result type of `name` on `args`, once every pg_catalog routine PostgreSQL may pick for
        them (an exact match, else every one the arguments reach by implicit casts) is shown immutable."""
        if not candidates:
            raise NotInert(f"it calls {name}(), which is not a built-in function" if what == "function"
                           else f"operator {name} is not a built-in operator")
        viable = [(c, params) for c in candidates if (params := _parameters(c, len(args))) is not None
                  and all(self.reaches(a, p) for a, p in zip(args, params))]
        exact = [(c, p) for c in candidates if (p := _parameters(c, len(args))) is not None
                 and all(isinstance(a, int) and a == t for a, t in zip(exact_args or args, p))]
        chosen = exact if len(exact) == 1 else viable
        if not chosen:
            raise NotInert(f"no built-in {what} {name} takes these arguments on the target")
        for routine, params in chosen:
            if not routine.immutable or routine.kind not in ("f", "o") or routine.returns_set:
                raise NotInert(f"{what} {name} is not an immutable built-in {what} on the target")
            for arg, param in zip(args, params):
                if param in self.catalog.pseudo or arg in (UNKNOWN, param):
                    continue
                if arg == ANY:  # whatever it is, every implicit cast into the parameter must be inert
                    safe = param not in self.catalog.arrays and self.catalog.all_casts_into_safe(param, implicit=True)
                else:  # an array coerced element by element has no pg_cast row: not shown inert
                    cast = self.catalog.cast(arg, param, implicit=True)
                    safe = cast is not None and cast.safe
                if not safe:
                    raise NotInert(f"{what} {name} needs a conversion that is not shown immutable")
        results = {c.result for c, _ in chosen}
        result = results.pop() if len(results) == 1 else ANY
        return ANY if result in self.catalog.pseudo else result

    def reaches(self, arg, param: int) -> bool:
        """Whether PostgreSQL may coerce `arg` to `param` implicitly (when unsure: yes, so that the
        routine is among those shown immutable): arrays coerce by their elements, without a pg_cast row."""
        return (arg in (UNKNOWN, ANY, param) or param in self.catalog.pseudo
                or self.catalog.cast(arg, param, implicit=True) is not None
                or (arg in self.catalog.arrays and param in self.catalog.arrays))


def _parameters(routine: Routine, count: int) -> tuple[int, ...] | None:
    """The parameter types a call with `count` arguments binds to, or None when it cannot."""
    params = routine.params
    if routine.variadic:
        fixed = params[:-1]
        return fixed + (routine.variadic,) * (count - len(fixed)) if count >= len(fixed) else None
    if len(params) - routine.defaults <= count <= len(params):
        return params[:count]
    return None


def constant(f: dict) -> tuple[str, object]:
    if f.get("isnull"):
        return "NULL", UNKNOWN
    if "ival" in f:
        value = int(f["ival"].get("ival", 0))
        return (f"({value})" if value < 0 else str(value)), INT4
    if "fval" in f:
        text = f["fval"].get("fval", "")
        try:
            number = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise NotInert("it holds a number this check does not read") from None
        if not number.is_finite() or set(text) - set("0123456789.eE+-"):
            raise NotInert("it holds a number this check does not read")
        integral = number == number.to_integral_value() and "." not in text and "e" not in text.lower()
        kind = INT8 if integral and -2**63 <= number < 2**63 else NUMERIC
        return (f"({text})" if text.startswith("-") else text), kind
    if "boolval" in f:
        return ("TRUE" if f["boolval"].get("boolval") else "FALSE"), BOOL
    if "sval" in f:
        return literal(f["sval"].get("sval", "")), UNKNOWN
    raise NotInert("it holds a constant this check does not read")


def operator_sql(name: str, left: int, right: int, catalog: Catalog) -> str:
    """OPERATOR(pg_catalog.<name>) between values of these types, once shown immutable (NotInert if not)."""
    return _Emitter({}, catalog, "").operator(name, left, right)[0]


def emit(node: dict, columns: Mapping[str, Column], catalog: Catalog, prefix: str = "") -> tuple[str, object]:
    """The expression as SQL to run on the target, and its type; raises NotInert when it is not provably
    inert. `prefix` qualifies its column references (a table alias and a dot)."""
    if not node:
        raise NotInert("it has no expression")
    return _Emitter(columns, catalog, prefix).emit(node)
