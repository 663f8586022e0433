"""Stage 5d: pre-flight checks. A rehearsal runs the plan on a copy of the target's schema, without its
rows, so it cannot see a statement that fails on the rows the target holds: a NOT NULL column added
without a default, a new unique key over duplicates, a CHECK or foreign key that some row breaks, a
type change some value does not survive, a partition whose bounds leave rows behind, an archive name
already taken. For each such statement on a table the target already has, this module says what to
count there, as data: the statement's number, what fails, a counting query and one that lists the rows.

Pure: candidates() reads the plan's statements (their facts, read once from pglast's tree) and the
target's snapshot; preflight_queries.queries() turns them into SQL, given what the check's read-only
transaction read of the tables (rehearsal/preflight_checks.py runs them). Queries are written from identifiers and
types only; an expression a declared statement carries (a CHECK, a USING, an index key) runs only when
inert_expressions.py shows it inert, else the check is reported "not checked", with the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..diff.operations import AlterAction, Facts
from ..diff.statement_facts import qualified
from .hazards import DELETES_DATA
from .expression_catalog import Column, Names, NotInert, names_used, tree, type_sql



@dataclasses.dataclass(frozen=True)
class Table:
    """What the check's transaction read of a table on the target."""

    rows: int
    columns: Mapping[str, Column]
    partition_key: tuple[str, ...] | None = None  # a partitioned table's key columns (None: not, or by expression)
    strategy: str | None = None  # its partition strategy: "r", "l" or "h"
    default_partition: str | None = None  # schema.name of its DEFAULT partition
    default_rows: int = 0  # the rows that DEFAULT partition holds


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A statement that can fail on the target's rows, and what it needs read before it is counted."""

    statement: int
    summary: str
    kind: str  # a key of LABELS
    table: str  # schema.name of the table whose rows it meets
    action: AlterAction | None = None  # the ALTER TABLE subcommand (for VALIDATE: the one that added it)
    facts: Facts | None = None  # the statement's facts, for CREATE INDEX / CREATE TABLE / SET SCHEMA
    other: str | None = None  # a second table: the referenced one, or the parent a partition is attached to
    other_is_new: bool = False  # that table is created by this plan (so empty)
    changed_columns: Mapping[str, int] = dataclasses.field(default_factory=dict)  # retyped earlier: statement
    not_checked: str | None = None  # decided from the plan alone
    # "converted rows": the new partitioned table's key columns and its partitions' bounds (JSON)
    partition_key: tuple[str, ...] = ()
    bounds: tuple[str, ...] = ()

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.table,) + ((self.other,) if self.other and not self.other_is_new else ())


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A check's result, as the plan file's header shows it: '-- preflight: <text>'."""

    statement: int
    text: str
    passed: bool | None = None  # None: not checked (or read back from a plan file)
    failing: int | None = None
    rows: int | None = None
    listing: str | None = None  # a read-only query listing what would fail
    reason: str = ""  # when it failed: the statement, the count, the listing query and what to do

    def to_dict(self) -> dict:
        return {"statement": self.statement, "check": self.text, "passed": self.passed, "failing": self.failing,
                "rows": self.rows, "listing": self.listing}


def _key(table: str | None, name: str | None) -> tuple:
    return (qualified(table), name)


def candidates(statements, current) -> list[Candidate]:
    """The plan's statements that can fail on rows the target holds (`current`: its snapshot)."""
    return _Walk(current).through(statements)


class _Walk:
    """Through the plan in order, keeping what earlier statements did that later checks depend on."""

    def __init__(self, current):
        self.exists = {key for kind, key in current.objects if kind == "table"}
        self.created: set[str] = set()  # by the plan: new, so empty
        self.added: dict[tuple, AlterAction] = {}  # (table, constraint) added NOT VALID, validated later
        self.unique_indexes: dict[tuple, Facts] = {}  # (table, index) created, for ADD ... USING INDEX
        self.retyped: dict[str, dict[str, int]] = {}  # table -> column -> the statement changing its type
        self.not_null_checked: set[tuple] = set()  # (table, column): a CHECK (column IS NOT NULL) counts them
        self.new_partitioned: dict[str, tuple[str, ...]] = {}  # partitioned table made by the plan -> its key
        self.new_bounds: dict[str, list[str]] = {}  # -> the bounds of the partitions made for it
        self.found: list[Candidate] = []
        self.data_step = self.number = self.statement = None

    def through(self, statements) -> list[Candidate]:
        for self.number, self.statement in enumerate(statements, 1):
            if self.statement.origin.startswith("data"):
                self.data_step = self.data_step or self.number
                continue
            for facts in self.statement.facts.parts or (self.statement.facts,):
                self.facts(facts)
                self.created |= facts.creates
        return self.found

    def on_target(self, table: str) -> bool:
        return table in self.exists and table not in self.created

    def candidate(self, kind: str, table: str, **fields) -> None:
        made = Candidate(self.number, self.statement.summary, kind, table,
                         changed_columns=self.retyped.get(table, {}), **fields)
        if self.data_step:
            made = dataclasses.replace(made, not_checked=f"the data step before it (statement {self.data_step}) may "
                                                         f"change the rows it meets")
        self.found.append(made)

    def facts(self, facts: Facts) -> None:
        table = qualified(facts.relation)
        if facts.node == "AlterTableStmt" and self.on_target(table):
            for action in facts.actions:
                self.alter(action, table)
        elif facts.node == "IndexStmt" and facts.unique:
            self.unique_indexes[_key(table, facts.name)] = facts
            if self.on_target(table):
                self.candidate("unique index", table, facts=facts)
        elif facts.node == "CreateStmt" and facts.partition_parent:
            parent = qualified(facts.partition_parent)
            if self.on_target(parent):
                self.candidate("default partition", parent, facts=facts)
            self.new_bounds.setdefault(parent, []).append(facts.bound)
        elif facts.node == "CreateStmt" and facts.partition_by:
            self.new_partitioned[table] = facts.partition_by
        elif facts.node == "InsertStmt" and facts.source and table in self.new_partitioned \
                and self.on_target(qualified(facts.source)):
            # The copy of a table converted to partitions (diff/conversion.py): its rows must all fit.
            self.candidate("converted rows", qualified(facts.source), other=table, other_is_new=True,
                           partition_key=self.new_partitioned[table], bounds=tuple(self.new_bounds.get(table, ())))
        elif facts.node == "AlterObjectSchemaStmt" and facts.object_type == "OBJECT_TABLE" and self.on_target(table):
            self.candidate("archive name", table, facts=facts)

    def alter(self, action: AlterAction, table: str) -> None:
        subtype, kind = action.subtype, action.constraint_type
        if subtype == "AT_AddColumn" and action.not_null and not action.has_default:
            self.candidate("new not null column", table, action=action)
        elif subtype == "AT_SetNotNull" and (table, action.name) not in self.not_null_checked:
            self.candidate("not null", table, action=action)
        elif subtype == "AT_AlterColumnType":
            if DELETES_DATA in self.statement.hazards:  # a widening keeps every value: nothing to count
                self.candidate("type", table, action=action)
            self.retyped.setdefault(table, {})[action.name] = self.number
        elif subtype == "AT_AttachPartition":
            partition = qualified(action.partition)
            if self.on_target(partition):
                self.candidate("partition bounds", partition, action=action, other=table)
            self.candidate("default partition", table, action=action)
        elif subtype == "AT_AddConstraint" and action.not_valid:
            self.added[_key(table, action.name)] = action
        elif subtype == "AT_AddConstraint" and kind in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
            self.key(action, table)
        elif subtype == "AT_AddConstraint" and kind in ("CONSTR_CHECK", "CONSTR_FOREIGN"):
            self.constraint(action, table)
        elif subtype == "AT_ValidateConstraint":
            earlier = self.added.get(_key(table, action.name))
            if earlier is not None:
                self.constraint(earlier, table)
            else:
                self.candidate("check", table, action=action, not_checked=f"it validates {action.name}, which this "
                                                                          f"plan does not add")

    def key(self, action: AlterAction, table: str) -> None:
        if not action.using_index:
            self.candidate("unique", table, action=action)
            if action.constraint_type == "CONSTR_PRIMARY":
                self.candidate("primary key nulls", table, action=action)
        elif action.constraint_type == "CONSTR_PRIMARY":  # the index exists: its keys may still hold NULLs
            index = self.unique_indexes.get(_key(table, action.using_index))
            self.candidate("primary key nulls", table, action=action, facts=index, not_checked=None if index else
                           f"its index {action.using_index} is not created by this plan")

    def constraint(self, action: AlterAction, table: str) -> None:
        if action.constraint_type == "CONSTR_CHECK":
            column = _not_null_test(tree(action.expression))
            if column:  # online apply's way to SET NOT NULL: counted as such, once
                self.not_null_checked.add((table, column))
                self.candidate("not null", table, action=AlterAction("AT_SetNotNull", column))
            else:
                self.candidate("check", table, action=action)
            return
        referenced = action.references
        # a table outside the snapshot (in an external schema, say) is looked up on the target
        self.candidate("foreign key", table, action=action, other=referenced, other_is_new=referenced in self.created)


def _not_null_test(expression: dict) -> str | None:
    """The column of a CHECK (column IS NOT NULL), as online apply makes for SET NOT NULL."""
    test = expression.get("NullTest") or {}
    fields = (test.get("arg") or {}).get("ColumnRef", {}).get("fields") or ()
    if test.get("nulltesttype") == "IS_NOT_NULL" and len(fields) == 1 and "String" in fields[0]:
        return fields[0]["String"]["sval"]
    return None


def names_to_resolve(found: list[Candidate]) -> Names:
    """Every function, operator and type the candidates' expressions and queries may use."""
    functions, operators, types = {"char_length", "rtrim", "round", "pg_input_is_valid"}, {"=", "<", "<=", ">",
                                                                                           ">="}, set()
    for c in found:
        for text in _expressions(c):
            names = names_used(tree(text))
            functions |= names.functions
            operators |= names.operators
            types |= names.types
        if c.kind == "type":
            try:
                types.add(type_sql(tree(c.action.type_name), any_schema=True))
            except NotInert:
                pass
    return Names(frozenset(functions), frozenset(operators), frozenset(types))


def _expressions(c: Candidate) -> list[str]:
    texts = [c.action.expression] if c.action is not None and c.action.expression else []
    if c.facts is not None and c.facts.node == "IndexStmt":
        texts += list(c.facts.index_keys) + ([c.facts.predicate] if c.facts.predicate else [])
    return texts


LABELS = {"new not null column": "new NOT NULL column", "not null": "SET NOT NULL", "check": "CHECK",
           "foreign key": "foreign key", "unique": "unique key", "unique index": "unique index",
           "primary key nulls": "primary key", "type": "type change", "partition bounds": "partition bounds",
           "default partition": "DEFAULT partition", "archive name": "archive name",
           "converted rows": "rows outside every declared partition"}


def outcome(query, failing: int | None, problem: str | None = None, cast_error: str | None = None) -> Outcome:
    """The result of a query (preflight_queries.Query): `failing` counted, else `cast_error` (PostgreSQL's
    message, for a query whose data errors mean a row does not cast), else `problem`: why not checked."""
    head = f"{query.statement}. {query.summary} ({query.label})"
    if failing is None and cast_error is None:
        return Outcome(query.statement, f"{head}: not checked: {problem or query.not_checked}", None,
                       rows=query.rows, listing=query.listing)
    if cast_error is not None:
        verdict = failed = f"at least one row does not cast: {cast_error}"
    elif query.unit == "names":
        verdict = failed = f"{failing} {query.what}"
    else:
        verdict, failed = f"{failing} of {query.rows} rows would fail", f"{failing} of {query.rows} {query.what}"
    passed = cast_error is None and not failing
    listing = f"; list them: {query.listing}" if query.listing else ""
    reason = "" if passed else f"statement {query.statement} ({query.summary}; {query.label}): {failed}{listing}; {query.fix}"
    return Outcome(query.statement, f"{head}: {verdict}", passed, failing, query.rows, query.listing, reason)


def refusal(failed: list[Outcome]) -> tuple[str, list[str]]:
    """The one-line message (and the detail lines, for more than one) of a plan its checks refuse."""
    more = f" (and {len(failed) - 1} more, listed above)" if len(failed) > 1 else ""
    return (f"pre-flight check on the target's rows: {failed[0].reason}{more}; nothing was written",
            [f"pre-flight: {o.reason}" for o in failed[1:]])
