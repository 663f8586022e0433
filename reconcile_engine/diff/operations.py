"""Stage 4 (diff): the statement as data. Every statement of a diff or a plan is an Operation: its SQL,
who wrote it, and its Facts, read once from PostgreSQL's own parse tree when the operation is made
(statement_facts.read_facts). The corrections, the plan's hazards, online steps, the runner and the
plan file read these facts; none parses the statement again.

A leaf module: only data types. A first plan holds tens of thousands of operations, each with its facts:
they have slots, not a dict each (a quarter of the memory).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class AlterAction:
    """One subcommand of an ALTER TABLE."""

    subtype: str  # pglast's AlterTableType name: "AT_AddColumn", "AT_DropColumn", ...
    name: str | None = None  # the column or constraint it names
    new_type: str | None = None  # AT_AlterColumnType: the type as the statement writes it
    default_may_rewrite: bool = False  # AT_AddColumn: a generated, identity or volatile default
    sets_default: bool = False  # AT_ColumnDefault: SET (True) or DROP DEFAULT
    partition: str | None = None  # AT_AttachPartition / AT_DetachPartition: schema.name
    concurrent: bool = False  # DETACH PARTITION ... CONCURRENTLY
    constraint_type: str | None = None  # AT_AddConstraint: "CONSTR_FOREIGN", "CONSTR_CHECK", ...
    using_index: str | None = None  # AT_AddConstraint ... USING INDEX name
    not_valid: bool = False  # AT_AddConstraint ... NOT VALID
    references: str | None = None  # AT_AddConstraint FOREIGN KEY: the referenced table
    # What pre-flight checks (planning/preflight.py) count the target's rows against:
    not_null: bool = False  # AT_AddColumn: declared NOT NULL (or PRIMARY KEY)
    has_default: bool = False  # AT_AddColumn: a DEFAULT, an identity or a generated column
    keys: tuple[str, ...] = ()  # AT_AddConstraint: UNIQUE / PRIMARY KEY columns, FOREIGN KEY's own columns
    referenced_keys: tuple[str, ...] = ()  # AT_AddConstraint FOREIGN KEY: the referenced columns
    match_full: bool = False  # AT_AddConstraint FOREIGN KEY ... MATCH FULL
    nulls_not_distinct: bool = False  # AT_AddConstraint UNIQUE NULLS NOT DISTINCT
    # Parse-tree parts as pglast's JSON text (plain values, with the tree's text positions, so not
    # compared; read by planning/preflight.py only):
    expression: str | None = dataclasses.field(default=None, compare=False)  # CHECK's; ALTER TYPE's USING
    type_name: str | None = dataclasses.field(default=None, compare=False)  # AT_AlterColumnType: the TypeName
    bound: str | None = dataclasses.field(default=None, compare=False)  # AT_AttachPartition: PartitionBoundSpec


@dataclasses.dataclass(frozen=True, slots=True)
class Facts:
    """What a statement is and what it touches, read from its parse tree; plain values only."""

    node: str  # pglast's node type ("AlterTableStmt"), "" for several statements, "?" when unparsable
    relation: str | None = None  # schema.name of the table (or index, view) the statement works on
    name: str | None = None  # the index, policy or trigger it creates
    objects: tuple[str, ...] = ()  # what a DROP, TRUNCATE or COMMENT names (schema-qualified when a relation)
    object_type: str | None = None  # DROP / COMMENT: pglast's ObjectType name ("OBJECT_TABLE")
    cascade: bool = False
    concurrent: bool = False  # CREATE INDEX / DROP INDEX / REFRESH ... CONCURRENTLY, REINDEX (CONCURRENTLY)
    partition_of: bool = False  # CREATE TABLE ... PARTITION OF
    skip_data: bool = False  # CREATE MATERIALIZED VIEW / REFRESH ... WITH NO DATA
    actions: tuple[AlterAction, ...] = ()  # ALTER TABLE
    creates: frozenset[str] = frozenset()  # tables and materialized views it creates (schema.name)
    function_created: str | None = None  # CREATE FUNCTION: the function's name (last part)
    functions_called: frozenset[str] = frozenset()  # in ALTER TABLE / CREATE TABLE: functions called (last part)
    parts: tuple["Facts", ...] = ()  # several statements in one text: each one's facts
    unique: bool = False  # CREATE UNIQUE INDEX
    nulls_not_distinct: bool = False  # CREATE UNIQUE INDEX ... NULLS NOT DISTINCT
    # Parse-tree parts as pglast's JSON text, not compared (see AlterAction), read by preflight.py only:
    index_keys: tuple[str, ...] = dataclasses.field(default=(), compare=False)  # CREATE INDEX: each IndexElem
    predicate: str | None = dataclasses.field(default=None, compare=False)  # CREATE INDEX ... WHERE
    bound: str | None = dataclasses.field(default=None, compare=False)  # CREATE TABLE ... PARTITION OF: bounds
    partition_parent: str | None = None  # CREATE TABLE ... PARTITION OF: the parent (schema.name as written)
    partition_by: tuple[str, ...] = ()  # CREATE TABLE ... PARTITION BY: its key columns (when plain columns)
    column_types: frozenset[str] = frozenset()  # CREATE TABLE: its columns' types (schema.name when qualified)
    new_schema: str | None = None  # ALTER TABLE ... SET SCHEMA: the schema it moves to
    source: str | None = None  # INSERT ... SELECT ... FROM one table: that table (schema.name as written)
    transaction_control: bool = False  # BEGIN, COMMIT, SAVEPOINT...: must run alone

    @property
    def parsed(self) -> bool:
        return self.node != "?"


UNPARSED = Facts("?")


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    sql: str
    origin: str  # "migra" or the name of the correction that wrote it; "data (...)" for a data step
    facts: Facts = dataclasses.field(repr=False, compare=False)
    # Commit right after this statement: what follows needs it committed (a new enum value
    # cannot be used in the transaction that adds it).
    commit_after: bool = False
    # Runs on its own, outside the plan's transactions, after what precedes it is committed (an online
    # step: a data step, the copy of a table being converted).
    online_step: bool = False
    # > 0: run in batches of this many rows by the primary key of the table it reads or writes, each
    # batch its own transaction (runner.run_in_batches); only with online_step.
    batch_rows: int = 0


@dataclasses.dataclass(frozen=True)
class SchemaDiff:
    statements: tuple[Operation, ...]
    corrections_used: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.statements


@dataclasses.dataclass(frozen=True)
class DiffContext:
    """What the declared files say beyond the schema that a correction needs: the partition specs
    (expiring a partition detaches or drops it, as its spec says), the rows per batch of a copy
    (conversion.py), and the USING expressions declared for type changes."""

    partition_specs: tuple = ()
    batch_rows: int = 5_000
    usings: tuple = ()  # declared/renames.ColumnUsing: how a column's values convert to its new type

    @classmethod
    def of(cls, desired, batch_rows: int) -> "DiffContext":
        """What `desired` (declared.files.DesiredState) says, with the config's rows per batch."""
        return cls(desired.partition_specs, batch_rows, desired.usings())
