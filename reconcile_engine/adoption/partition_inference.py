"""Stage A4 (pull): range-partitioned tables whose partitions form a rolling window -> partition specs.

A spec (declared/partition_specs.py) makes, for an as-of date, the `keep` periods up to the current
one and `premake` after it, named by the interval's default pattern, plus <table>_default if asked.
A table gets a spec only when one makes exactly its partitions: the same names and bounds, and
nothing of their own (columns, keys, indexes, comments, ...) beyond what PostgreSQL copies from the
parent into a partition the spec creates, under the names PostgreSQL would give them. keep and
premake are read off the partitions present, counted in periods from the as-of period, and the
window is then rendered as the spec renders it and compared. Other partitioned tables keep their
partitions as SQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import yaml

from ..declared.partition_specs import (
    DEFAULT_NAMING, INTERVALS, PartitionSpec, partitions_for, period_start,
)
from .facts import DumpFacts
from .subjects import ATTACH, DEFINES, INDEX_ATTACH, Name

NAMEDATALEN = 64  # PostgreSQL's limit on a name, in bytes, counting the final NUL
_LABELS = {"CONSTR_PRIMARY": "pkey", "CONSTR_UNIQUE": "key", "CONSTR_EXCLUSION": "excl"}
_NOT_COPIED = ("relation", "partspec", "partbound", "inhRelations")  # what a partition does not take from its parent
SPEC_HEADER = ("# Pulled from the database: keep and premake make exactly the partitions it had, for the\n"
               "# as-of date of the pull (see the README, Partitions: a rolling window).\n")


@dataclasses.dataclass(frozen=True)
class InferredSpec:
    spec: PartitionSpec
    partitions: frozenset[Name]  # the partitions the spec makes: pull writes none of their statements

    def yaml(self) -> str:
        spec = self.spec
        fields = {"table": spec.table, "column": spec.column, "interval": spec.interval, "keep": spec.keep,
                  "premake": spec.premake}
        if spec.schema != "public":
            fields["schema"] = spec.schema
        if spec.default_partition:
            fields["default_partition"] = True
        return SPEC_HEADER + yaml.safe_dump(fields, sort_keys=False, width=1000)


def infer_specs(statements, facts: DumpFacts, as_of: dt.date) -> tuple[list[InferredSpec], list[str]]:
    """The specs that reproduce partitioned tables' partitions as of `as_of`, and a note for each
    range-partitioned table that keeps its partitions as SQL, saying why."""
    specs, notes = [], []
    for parent, creation in facts.creation.items():
        column = _range_column(creation.node.get("partspec"))
        children = facts.children(parent)
        if column is None or not children or parent in facts.partition_parent:
            continue
        spec, problem = _window(parent, column, children, facts, as_of)
        if spec is not None:
            problem = _own_definitions(parent, children, statements, facts)
        if problem:
            notes.append(f"{parent[0]}.{parent[1]}: its partitions stay SQL beside it, as no partition spec "
                         f"makes them: {problem}")
        else:
            specs.append(InferredSpec(spec, frozenset(children)))
    return specs, notes


def _range_column(partspec: dict | None) -> str | None:
    """The key column of PARTITION BY RANGE (column); None for any other partitioning."""
    if not partspec or partspec.get("strategy") not in ("PARTITION_STRATEGY_RANGE", "range", "r"):
        return None
    params = [p.get("PartitionElem", {}) for p in partspec.get("partParams", ())]
    if len(params) != 1 or not params[0].get("name") or params[0].get("collation") or params[0].get("opclass"):
        return None
    return params[0]["name"]


def _day(datums) -> dt.date | None:
    """A bound's one value as a date, when it is one: '2026-01-01', or midnight of a timestamp, or
    of a timestamptz in the session's time zone (pg_dump's and the build's are the server's, or the
    same PGTZ: a spec's '2026-01-01' is that instant)."""
    if not datums or len(datums) != 1:
        return None
    text = datums[0].get("A_Const", {}).get("sval", {}).get("sval")
    offset = (text or "")[19:]
    if not text or text[10:19] not in ("", " 00:00:00") or (
            offset and not (offset[0] in "+-" and offset[1:].replace(":", "").isdigit())):
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _window(parent: Name, column: str, children: list[Name], facts: DumpFacts, as_of: dt.date):
    """(the spec whose window is exactly these partitions as of `as_of`, or None; why not)."""
    defaults = [c for c in children if facts.partition_bound[c].get("is_default")]
    if defaults and defaults != [(parent[0], f"{parent[1]}_default")]:
        return None, f"its DEFAULT partition is not named {parent[1]}_default"
    ranges = {}
    for child in children:
        if child in defaults:
            continue
        bound = facts.partition_bound[child]
        start, end = _day(bound.get("lowerdatums")), _day(bound.get("upperdatums"))
        if child[0] != parent[0] or start is None or end is None:
            return None, f"partition {child[0]}.{child[1]} is not bounded by dates in {parent[0]}"
        ranges[child[1]] = (start, end)
    for interval in INTERVALS:
        probe = PartitionSpec(file=Path(), display="", schema=parent[0], table=parent[1], column=column,
                              interval=interval, keep=1, premake=0, default_partition=bool(defaults),
                              naming=DEFAULT_NAMING[interval])
        current = period_start(probe, as_of)
        offsets = [(start.year - current.year) * 12 + start.month - current.month for start, _ in ranges.values()]
        if not offsets or any(offset % probe.months for offset in offsets):
            continue
        keep, premake = 1 - min(offsets) // probe.months, max(offsets) // probe.months
        if keep < 1 or premake < 0:
            continue
        spec = dataclasses.replace(probe, keep=keep, premake=premake)
        if {p.name: (p.start, p.end) for p in partitions_for(spec, as_of)} == ranges:
            return spec, ""
    return None, (f"they are not a run of yearly, quarterly or monthly periods through the one of "
                  f"{as_of.isoformat()}, named as a spec names them ({DEFAULT_NAMING['yearly']}, ...)")


def _shape(value):
    """A parse tree without positions, and without the names PostgreSQL 18 gives NOT NULL
    constraints (a partition's are named after its parent's)."""
    if isinstance(value, list):
        return [_shape(item) for item in value]
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()
                if key != "location" and not (key == "conname" and value.get("contype") == "CONSTR_NOTNULL")}
    return value


def _own_definitions(parent: Name, children: list[Name], statements, facts: DumpFacts) -> str:
    """Why the partitions are more than the spec would make of them; "" when they are not."""
    parent_node = facts.creation[parent].node
    copied = _shape({k: v for k, v in parent_node.items() if k not in _NOT_COPIED})
    for child in children:
        node = facts.creation[child].node
        if _shape({k: v for k, v in node.items() if k not in _NOT_COPIED}) != copied \
                or node["relation"].get("relpersistence") != parent_node["relation"].get("relpersistence"):
            return f"partition {child[1]} is not defined as its parent is"
    clones = {}  # (partition, the name PostgreSQL gives its copy of a parent's index) -> that index
    for statement in statements:
        if facts.relation_of(statement.subject) == parent and statement.subject.index is not None:
            label, columns = _index_label_and_columns(statement)
            for child in children:
                clones[(child, _object_name(child[1], _column_addition(columns) if label != "pkey" else None,
                                            label))] = statement.subject.index
    seen = set()
    for statement in statements:
        subject = statement.subject
        if subject.role == INDEX_ATTACH and facts.index_table.get(subject.child) in children:
            child = facts.index_table[subject.child]
            if clones.get((child, subject.child[1])) != subject.name:
                return f"index {subject.child[1]} is not the copy of {subject.name[1]} the spec would make"
            continue
        if subject.role == ATTACH and subject.child in children:
            continue
        owner = facts.relation_of(subject)
        if owner not in children:
            continue
        if subject.role == DEFINES and statement.node_type == "CreateStmt":
            continue
        if subject.index is not None and (owner, subject.index[1]) in clones:
            seen.add((owner, subject.index[1]))
            continue
        if subject.index is not None:
            return (f"index {subject.index[1]} of partition {owner[1]} is not a copy of its parent's indexes "
                    f"named as PostgreSQL names one in a partition the spec creates")
        return f"partition {owner[1]} has its own {_first_words(statement.text)}"
    if seen != set(clones):
        return "a partition lacks a copy of one of its parent's indexes"
    return ""


def _index_label_and_columns(statement) -> tuple[str, list[str]]:
    """How PostgreSQL names a partition's copy of this index: the label ending the name, and the
    index's column names ("expr" for an expression, numbered when repeated)."""
    node = statement.node
    if statement.node_type == "IndexStmt":
        elements = [e.get("IndexElem", {}) for e in (*node.get("indexParams", ()), *node.get("indexIncludingParams", ()))]
        return "idx", _column_names(elements)
    constraint = next(c["AlterTableCmd"]["def"]["Constraint"] for c in node["cmds"]
                      if c["AlterTableCmd"].get("def", {}).get("Constraint", {}).get("contype") in _LABELS)
    if constraint["contype"] == "CONSTR_EXCLUSION":
        elements = [pair["List"]["items"][0]["IndexElem"] for pair in constraint.get("exclusions", ())]
    else:
        elements = [{"name": key["String"]["sval"]} for key in (*constraint.get("keys", ()), *constraint.get("including", ()))]
    return _LABELS[constraint["contype"]], _column_names(elements)


def _column_names(elements) -> list[str]:
    """PostgreSQL's ChooseIndexColumnNames."""
    names: list[str] = []
    for element in elements:
        original = element.get("indexcolname") or element.get("name") or "expr"
        name, number = original, 0
        while name in names:
            number += 1
            name = _clip(original, NAMEDATALEN - 1 - len(str(number))) + str(number)
        names.append(name)
    return names


def _column_addition(columns: list[str]) -> str:
    """PostgreSQL's ChooseIndexNameAddition: the column names joined by '_', cut near NAMEDATALEN."""
    text = ""
    for column in columns:
        text = f"{text}_{column}" if text else column
        if len(text.encode()) >= NAMEDATALEN:
            break
    return text


def _object_name(name1: str, name2: str | None, label: str) -> str:
    """PostgreSQL's makeObjectName: name1_name2_label within NAMEDATALEN - 1 bytes, the longer part
    shortened first."""
    overhead = (1 if name2 is not None else 0) + len(label) + 1
    first, second = len(name1.encode()), len(name2.encode()) if name2 is not None else 0
    while first + second > NAMEDATALEN - 1 - overhead:
        if first > second:
            first -= 1
        else:
            second -= 1
    parts = [_clip(name1, first)] + ([_clip(name2, second)] if name2 is not None else [])
    return "_".join(parts + [label])


def _clip(text: str, size: int) -> str:
    """The longest prefix of `text` within `size` bytes, whole characters only."""
    return text.encode()[:max(size, 0)].decode("utf-8", "ignore")


def _first_words(text: str) -> str:
    words = text.split()
    return " ".join(words[:4]) + (" ..." if len(words) > 4 else "")
