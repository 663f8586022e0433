"""Stage 4 (diff), correction `partitions.convert-in-place`: a table declared partitioned that the target
holds as a plain table (or the reverse, or partitioned by another key), converted in place: same name,
every row kept, the application blocked only for a short swap. migra cannot do it (schemainspect
crashes comparing a plain table with a partitioned one, and a drop + create would lose the rows), so
such tables are taken out of migra's view and planned here, in parts that apply runs in order
(runner.plan_units):

1. in the plan's transaction: the declared table (with its partitions, keys, indexes and checks) built
   beside the live one, in the schema `reconcile_conversion`, and a trigger on the live table that
   mirrors every row written from then on into it (insert, update, delete: a SECURITY DEFINER function);
2. an online step in batches: the rows copied by primary-key ranges, each batch its own transaction
   (`FOR SHARE` on the rows it copies, so a concurrent update waits for the batch and is then mirrored;
   `ON CONFLICT DO NOTHING`, so a row the trigger mirrored first is kept); an interrupted apply resumes
   after the last batch committed;
3. an online step counts both tables' rows in one snapshot (the mirror writes in the application's own
   transactions, so they agree at any snapshot) and stops the apply, before anything is swapped, if
   they do not;
4. the swap, one short transaction under a short lock_timeout (apply retries it): lock the live table,
   drop the trigger and the old table (its rows are all in the new one: the plan marks it destructive
   and names its row count, for the reviewer to approve), move the new one and its partitions into
   place, then what must be made on the table in place: row-level security, policies, triggers,
   grants (the target's own, when reconcile.yaml does not manage them), comments, dependent views,
   foreign keys that reference it.

Refused, with the reason, when it cannot be done safely: no primary key on either side (the copy is
cut and the mirror keyed by it), identity columns, a key column the live table lacks.
"""

from __future__ import annotations

import dataclasses

from pglast import parse_sql
from pglast.stream import RawStream
from pglast.visitors import Visitor

from ..config import CONVERSION_SCHEMA
from ..errors import PlanRefusedError
from ..inspection.migra_view import InspectedDatabase, key_of
from ..sqltext import dollar_quoted, quote_literal, quote_part
from .operations import Operation
from .statement_facts import operation, qualified, read_facts

NAME = "partitions.convert-in-place"
SHADOW_SCHEMA = CONVERSION_SCHEMA  # where the new table is built; gone once the last swap ran
SWAP_LOCK_TIMEOUT = "500ms"  # the longest the application queues behind the swap's lock request
MIRROR_TRIGGER = "reconcile_mirror"


@dataclasses.dataclass(frozen=True)
class Conversion:
    table: str  # schema.name
    to_partitioned: bool
    old_partitions: tuple[str, ...]  # schema.name of the target's partitions (converting back)
    new_partitions: tuple[str, ...]  # schema.name of the declared partitions
    views: tuple[str, ...]  # views and materialized views over the table, on either side
    referencing: tuple[str, ...]  # foreign keys of other tables that reference it ("schema.table.name")

    @property
    def schema(self) -> str:
        return self.table.partition(".")[0]

    @property
    def name(self) -> str:
        return self.table.partition(".")[2]

    @property
    def moved(self) -> set[str]:
        """What migra must not see: the table, its partitions and the views over it."""
        return {self.table, *self.old_partitions, *self.new_partitions, *self.views}


def find_conversions(current: InspectedDatabase, desired: InspectedDatabase) -> list[Conversion]:
    before, after = current.snapshot.fact("relkind"), desired.snapshot.fact("relkind")
    found = []
    for table in sorted(set(before) & set(after)):
        kinds = {before[table], after[table]}
        if kinds != {"r", "p"} and not (kinds == {"p"} and _partition_key(current, table) != _partition_key(desired, table)):
            continue  # neither plain <-> partitioned nor partitioned by another key
        old_parents = current.snapshot.fact("partition parent")
        new_parents = desired.snapshot.fact("partition parent")
        if table in old_parents or table in new_parents:
            continue  # a partition attached or detached, not a table converted
        found.append(Conversion(
            table, after[table] == "p",
            tuple(sorted(p for p, parent in old_parents.items() if parent == table)),
            tuple(sorted(p for p, parent in new_parents.items() if parent == table)),
            tuple(sorted(_views_over(current, table) | _views_over(desired, table))),
            tuple(sorted(_referencing(current, table) | _referencing(desired, table))),
        ))
    return found


def _partition_key(side: InspectedDatabase, table: str) -> str | None:
    """PARTITION BY's definition (RANGE (day)), as PostgreSQL prints it (from the snapshot: schemainspect's
    view of a side may be frozen, and thawing it costs a copy's time and memory)."""
    return side.snapshot.fact("partition key").get(table)


def _selectable(side: InspectedDatabase, table: str):
    return side.inspected.selectables.get(key_of(table))


def _views_over(side: InspectedDatabase, table: str) -> set[str]:
    """Views and materialized views that read the table, directly or through one another (from the
    catalog: schemainspect lists no dependents of a partitioned table)."""
    reads = side.snapshot.fact("reads")
    found, more = set(), {table}
    while more:
        more = {view for view, relations in reads.items() if set(relations or ()) & more} - found
        found |= more
    return found


def _referencing(side: InspectedDatabase, table: str) -> set[str]:
    quoted = key_of(table)
    return {f"{c.schema}.{c.table_name}.{c.name}" for c in side.inspected.constraints.values()
            if c.is_fk and c.quoted_full_foreign_table_name == quoted and f"{c.schema}.{c.table_name}" != table}


def conversion_operations(conversion: Conversion, current: InspectedDatabase, desired: InspectedDatabase,
                          creation: list[Operation], batch_rows: int, last: bool) -> list[Operation]:
    """The parts (see the module) of one conversion, in order. `creation`: the statements that make the
    declared table and all that belongs to it, as a diff from nothing gives them (migra_diff.py)."""
    old, new = _selectable(current, conversion.table), _selectable(desired, conversion.table)
    keys, columns = _keys_and_columns(conversion, current, desired, old, new)
    shadow = f"{quote_part(SHADOW_SCHEMA)}.{quote_part(conversion.name)}"
    live = f"{quote_part(conversion.schema)}.{quote_part(conversion.name)}"
    built = {conversion.table, *conversion.new_partitions}
    beside, in_place = [], []
    for op in creation:
        if _validates(op, built):
            continue  # the new table's constraints are added valid, while it is empty
        if _builds_the_table(op, built):
            beside.append(operation(_in_schema(op.sql, built, SHADOW_SCHEMA), NAME))
        else:
            in_place.append(Operation(op.sql, NAME, op.facts, op.commit_after))
    function = f"{quote_part(SHADOW_SCHEMA)}.{quote_part(('mirror_' + conversion.name)[:63])}"
    build = [f"CREATE SCHEMA IF NOT EXISTS {quote_part(SHADOW_SCHEMA)};"]
    mirror = [_mirror_function(function, shadow, keys, columns),
              f"CREATE TRIGGER {MIRROR_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {live} "
              f"FOR EACH ROW EXECUTE FUNCTION {function}();"]
    listed = ", ".join(quote_part(c) for c in columns)
    only = "" if conversion.old_partitions else "ONLY "
    copy = operation(f"INSERT INTO {shadow} ({listed}) SELECT {listed} FROM {only}{live} FOR SHARE "
                     f"ON CONFLICT DO NOTHING;", NAME, online_step=True, batch_rows=batch_rows)
    verify = operation(_verification(live, shadow, only), NAME, online_step=True)
    swap = [f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}';",
            f"LOCK TABLE {live} IN ACCESS EXCLUSIVE MODE;",
            f"DROP TRIGGER {MIRROR_TRIGGER} ON {live};",
            f"DROP FUNCTION {function}();"]
    swap += _drop_views(conversion, current)
    swap += [f"ALTER TABLE {_relation(c.rsplit('.', 1)[0])} DROP CONSTRAINT {quote_part(c.rsplit('.', 1)[1])};"
             for c in conversion.referencing if _has_constraint(current, c)]
    swap += [f"ALTER SEQUENCE {sequence} OWNED BY NONE;" for sequence, _ in _owned_sequences(current, conversion.table)]
    # Its rows are all in the new table (the step before counted them, in one snapshot).
    swap += [f"DROP TABLE {live};", f"ALTER TABLE {shadow} SET SCHEMA {quote_part(conversion.schema)};"]
    swap += [f"ALTER TABLE {quote_part(SHADOW_SCHEMA)}.{quote_part(p.partition('.')[2])} SET SCHEMA "
             f"{quote_part(conversion.schema)};" for p in conversion.new_partitions]
    after = [f"ALTER SEQUENCE {sequence} OWNED BY {live}.{quote_part(column)};"
             for sequence, column in _owned_sequences(desired, conversion.table)]
    if not current.scope.privileges:
        after += _grants_kept(current, conversion.table, live)
    if last:
        after.append(f"DROP SCHEMA {quote_part(SHADOW_SCHEMA)};")
    return ([operation(sql, NAME) for sql in build] + beside + [operation(sql, NAME) for sql in mirror] + [copy, verify]
            + [operation(sql, NAME) for sql in swap] + in_place + [operation(sql, NAME) for sql in after])


def _grants_kept(current: InspectedDatabase, table: str, live: str) -> list[str]:
    """Grants are not managed (privileges: false): the ones the target's table has are given to the new
    table, which otherwise has only what default privileges give its creator's new tables."""
    schema, _, name = table.partition(".")
    return [f"GRANT {p.privilege.upper()} ON TABLE {live} TO "
            f"{'PUBLIC' if p.target_user.upper() == 'PUBLIC' else quote_part(p.target_user)};"
            for p in sorted(current.inspected.privileges.values(), key=lambda p: (p.target_user, p.privilege))
            if p.object_type == "table" and p.schema == schema and p.name == name]


def _verification(live: str, shadow: str, only: str) -> str:
    """Before the old table goes: both hold the same number of rows, counted in one snapshot (the
    mirror writes in the application's own transactions, so at any snapshot the two agree)."""
    body = ("BEGIN\n"
            f"    -- count the rows of {live} and of its copy in one snapshot: they must be equal\n"
            "    -- (every row, whatever the policies: the copy before it read them all, so the role may)\n"
            "    IF (SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN\n"
            "        PERFORM set_config('row_security', 'off', true);\n"
            "    END IF;\n"
            f"    IF (SELECT count(*) FROM {only}{live}) <> (SELECT count(*) FROM {shadow}) THEN\n"
            f"        RAISE EXCEPTION 'reconcile: the copy of % into % is missing rows; nothing was swapped', "
            f"{quote_literal(live)}, {quote_literal(shadow)};\n"
            "    END IF;\n"
            "END")
    return f"DO {dollar_quoted(body)};"


def _keys_and_columns(conversion: Conversion, current, desired, old, new) -> tuple[list[str], list[str]]:
    """The declared primary key (the mirror's conflict target) and the columns copied: those both
    tables have, but generated ones. Refused when the conversion cannot be made safe."""
    why = None
    new_key = _primary_key(desired, conversion.table)
    old_key = _primary_key(current, conversion.table)
    if old is None or new is None:
        why = "schemainspect does not see both tables"
    elif not new_key:
        why = ("the declared table has no primary key: the rows written during the copy are mirrored by it "
               "(declare one; on a partitioned table it must include the partition key)")
    elif not old_key:
        why = "the target's table has no primary key to copy its rows in batches by: add one first, in its own plan"
    elif any(c.is_identity for c in list(new.columns.values()) + list(old.columns.values())):
        why = "it has an identity column, whose sequence a new table would restart (not supported yet)"
    elif set(new_key) - set(old.columns):
        missing = ", ".join(sorted(set(new_key) - set(old.columns)))
        why = f"the declared primary key uses {missing}, which the target's table does not have yet: add it first"
    if why:
        direction = "partitions" if conversion.to_partitioned else "a plain table"
        raise PlanRefusedError(f"{conversion.table}: cannot be converted to {direction} in place: {why}; "
                               f"nothing was planned")
    columns = [name for name, column in new.columns.items() if name in old.columns and not column.is_generated]
    return new_key, columns


def _primary_key(side: InspectedDatabase, table: str) -> list[str]:
    for constraint in side.inspected.constraints.values():
        if f"{constraint.schema}.{constraint.table_name}" == table and constraint.constraint_type == "PRIMARY KEY":
            facts = read_facts(f"ALTER TABLE t ADD CONSTRAINT c {constraint.definition}")
            return list(facts.actions[0].keys) if facts.actions else []
    return []


def _has_constraint(side: InspectedDatabase, name: str) -> bool:
    return any(f"{c.schema}.{c.table_name}.{c.name}" == name for c in side.inspected.constraints.values())


def _owned_sequences(side: InspectedDatabase, table: str) -> list[tuple[str, str]]:
    return [(f"{quote_part(s.schema)}.{quote_part(s.name)}", s.column_name)
            for s in side.inspected.sequences.values()
            if s.table_name and f"{s.schema}.{s.table_name}" == table and s.column_name]


def _drop_views(conversion: Conversion, current: InspectedDatabase) -> list[str]:
    """The target's views over the table, dependents first (they are made again, over the new table)."""
    present = [_selectable(current, v) for v in conversion.views]
    present = [v for v in present if v is not None]
    order = sorted(present, key=lambda v: -len(getattr(v, "dependent_on_all", None) or ()))
    return [f"DROP {'MATERIALIZED VIEW' if v.relationtype == 'm' else 'VIEW'} IF EXISTS "
            f"{quote_part(v.schema)}.{quote_part(v.name)};" for v in order]


def _relation(name: str) -> str:
    schema, _, relname = name.partition(".")
    return f"{quote_part(schema)}.{quote_part(relname)}"


def _builds_the_table(op: Operation, built: set[str]) -> bool:
    """The statements the copy needs on the new table: itself, its partitions, keys, indexes, checks
    and foreign keys. The rest (row-level security, policies, triggers, grants, comments) is made in
    place by the swap: a trigger must not fire on copied rows, nor a forced policy hide them."""
    facts = op.facts
    table = qualified(facts.relation)
    if facts.node == "CreateStmt":
        return table in built
    if facts.node == "IndexStmt":
        return table in built
    if facts.node == "AlterTableStmt" and table in built:
        return all(a.subtype == "AT_AddConstraint" for a in facts.actions)
    return False


def _validates(op: Operation, built: set[str]) -> bool:
    facts = op.facts
    return (facts.node == "AlterTableStmt" and qualified(facts.relation) in built
            and all(a.subtype == "AT_ValidateConstraint" for a in facts.actions))


class _Rename(Visitor):
    def __init__(self, names: set[str], schema: str):
        super().__init__()
        self.names, self.schema = names, schema

    def visit_RangeVar(self, ancestors, node):
        if qualified(".".join(p for p in (node.schemaname, node.relname) if p)) in self.names:
            node.schemaname = self.schema

    def visit_Constraint(self, ancestors, node):
        node.skip_validation = False  # NOT VALID: the new table is empty when its constraints are added
        node.initially_valid = True


def _in_schema(sql: str, names: set[str], schema: str) -> str:
    """The statement with every reference to one of `names` moved to `schema` (pglast's tree of
    this one statement: the table, a partition's parent, a key that references the table itself)."""
    statement = parse_sql(sql)[0].stmt
    _Rename(names, schema)(statement)
    return RawStream()(statement) + ";"


def _mirror_function(function: str, shadow: str, keys: list[str], columns: list[str]) -> str:
    """The trigger function: each row written to the live table, written to the new one. SECURITY
    DEFINER (the deploy role owns both tables: the application's role needs no grant on the new one,
    and the new table's policies, not forced yet, do not hide the owner's writes)."""
    key_list = ", ".join(quote_part(k) for k in keys)
    old_key = ", ".join(f"OLD.{quote_part(k)}" for k in keys)
    listed = ", ".join(quote_part(c) for c in columns)
    values = ", ".join(f"NEW.{quote_part(c)}" for c in columns)
    updates = ", ".join(f"{quote_part(c)} = EXCLUDED.{quote_part(c)}" for c in columns if c not in keys)
    conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    body = (f"BEGIN\n"
            f"    IF TG_OP <> 'INSERT' THEN\n"
            f"        DELETE FROM {shadow} WHERE ({key_list}) = ({old_key});\n"
            f"    END IF;\n"
            f"    IF TG_OP <> 'DELETE' THEN\n"
            f"        INSERT INTO {shadow} ({listed}) VALUES ({values}) ON CONFLICT ({key_list}) {conflict};\n"
            f"    END IF;\n"
            f"    RETURN NULL;\n"
            f"END")
    return (f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
            f"SET search_path = pg_catalog, pg_temp AS {dollar_quoted(body)};")
