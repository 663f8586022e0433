"""A partition's bounds (FOR VALUES ...) as the condition its rows meet, for pre-flight checks: the rows
a table attached as a partition holds outside them, and those a DEFAULT partition holds inside them.

The condition is built as a parse tree (column references, the bounds' constants, comparison
operators) and written as SQL by inert_expressions.emit, like any expression a check evaluates: the
bounds come from a declared statement. Pure.
"""

from __future__ import annotations

from .expression_catalog import Catalog, NotInert
from .inert_expressions import emit

_INFINITE = ("minvalue", "maxvalue")


def column_ref(name: str) -> dict:
    return {"ColumnRef": {"fields": [{"String": {"sval": name}}]}}


def _operator(name: str, left: dict, right: dict) -> dict:
    return {"A_Expr": {"kind": "AEXPR_OP", "name": [{"String": {"sval": name}}], "lexpr": left, "rexpr": right}}


def _bool(op: str, args: list[dict]) -> dict:
    return args[0] if len(args) == 1 else {"BoolExpr": {"boolop": op, "args": args}}


def _null_test(node: dict, test: str) -> dict:
    return {"NullTest": {"arg": node, "nulltesttype": test}}


def _infinite(datum: dict) -> str | None:
    """'minvalue' or 'maxvalue' for MINVALUE / MAXVALUE, None for a constant; NotInert for an expression."""
    if "ColumnRef" in datum:
        names = [f.get("String", {}).get("sval") for f in datum["ColumnRef"].get("fields") or ()]
        if len(names) == 1 and names[0] in _INFINITE:
            return names[0]
    if "A_Const" not in datum:
        raise NotInert("its bounds are expressions, which are not evaluated on the target")
    return None


def _lexicographic(keys: list[dict], values: list[dict], earlier: str, last: str) -> dict:
    """(k1, k2, ...) compared with (v1, v2, ...) the way a range bound does: `earlier` strictly on a
    leading key (or equal and the rest compared), `last` on the final one."""
    if len(keys) == 1:
        return _operator(last, keys[0], values[0])
    rest = _lexicographic(keys[1:], values[1:], earlier, last)
    return _bool("OR_EXPR", [_operator(earlier, keys[0], values[0]),
                             _bool("AND_EXPR", [_operator("=", keys[0], values[0]), rest])])


def _range_side(keys: list[dict], datums: list, lower: bool) -> dict | None:
    """One side of a range bound; None when it does not limit (MINVALUE first on the lower side...)."""
    values, stop = [], None
    for datum in datums:
        stop = _infinite(datum)
        if stop:
            break
        values.append(datum)
    if not values:
        return None
    if lower:  # FROM is inclusive; (a, MAXVALUE) means after every (a, x)
        return _lexicographic(keys[:len(values)], values, ">", ">" if stop == "maxvalue" else ">=")
    return _lexicographic(keys[:len(values)], values, "<", "<=" if stop == "maxvalue" else "<")


def bound_tree(bound: dict, keys: tuple[str, ...]) -> dict:
    """The condition a row of a partition with these bounds meets, as a parse tree."""
    if bound.get("is_default"):
        raise NotInert("a DEFAULT partition holds whatever its siblings do not")
    columns = [column_ref(k) for k in keys]
    strategy = bound.get("strategy")
    if strategy == "l" and len(columns) == 1:
        values = bound.get("listdatums") or ()
        for datum in values:
            _infinite(datum)
        listed = [_operator("=", columns[0], v) for v in values if not v["A_Const"].get("isnull")]
        if len(listed) < len(values):  # NULL is listed: rows with no key go here too
            return _bool("OR_EXPR", [_null_test(columns[0], "IS_NULL")] + listed)
        return _bool("AND_EXPR", [_null_test(columns[0], "IS_NOT_NULL"), _bool("OR_EXPR", listed)])
    if strategy == "r":
        sides = [_range_side(columns, bound.get("lowerdatums") or (), True),
                 _range_side(columns, bound.get("upperdatums") or (), False)]
        return _bool("AND_EXPR", [_null_test(c, "IS_NOT_NULL") for c in columns] + [s for s in sides if s])
    raise NotInert("hash partition bounds are not checked")


def bounds_condition(bound: dict, parent, catalog: Catalog) -> str:
    """The SQL condition a row of a partition of `parent` (a preflight.Table) with these bounds meets."""
    if not parent.partition_key:
        raise NotInert("its parent is not partitioned by plain columns on the target")
    return emit(bound_tree(bound, parent.partition_key), parent.columns, catalog)[0]
