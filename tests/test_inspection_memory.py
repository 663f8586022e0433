"""Stage 3 (inspect) held compactly: schemainspect's view frozen between diffs, each copy its own; strings
read once shared across snapshots; owners kept only where they are not the key itself. What these
tests hold is that the compact forms answer exactly as the plain ones did."""

import itertools

from reconcile_engine.diff.migra_diff import diff
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.inspection.snapshot import CatalogSnapshot, Scope, read_snapshot

SCHEMAS = Scope(("public",))
ODD = 'we"ird;\nname'  # a name with a quote, a semicolon and a newline
QUOTED_ODD = '"' + ODD.replace('"', '""') + '"'
SCHEMA_SQL = f"""
    CREATE TABLE plain (id bigint PRIMARY KEY, org_id text NOT NULL);
    CREATE INDEX plain_org_idx ON plain (org_id);
    CREATE TABLE {QUOTED_ODD} (id bigint PRIMARY KEY, "odd ""col" text);
    CREATE TABLE events (id bigint NOT NULL, day date NOT NULL, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    ALTER TABLE plain ENABLE ROW LEVEL SECURITY;
"""


def _database(new_database, sql, text=SCHEMA_SQL):
    url = new_database()
    if text:
        sql(url, text)
    return url


def test_copies_of_an_inspection_are_independent_of_it_and_of_each_other(new_database, sql):
    inspected = inspect_database(_database(new_database, sql), SCHEMAS)
    empty = inspect_database(_database(new_database, sql, ""), SCHEMAS)
    first_plan = [s.sql for s in diff(empty, inspected).statements]

    first = inspected.copy()  # takes the view as it was read; the inspection keeps it frozen
    key = '"public"."plain"'
    first.inspected.tables.pop(key)
    first.inspected.selectables[key].rowsecurity = False
    second = inspected.copy()  # thawed from the frozen view: as read, not as the first copy left it

    for view in (second.inspected, inspected.inspected):
        assert key in view.tables and view.selectables[key].rowsecurity is True
        assert f'"public".{QUOTED_ODD}' in view.tables
    assert key not in first.inspected.tables
    # Diffed again (and from the other side, as the reverse plan is), the frozen inspection says the same.
    assert [s.sql for s in diff(empty, inspected).statements] == first_plan
    assert any(s.startswith("drop table") for s in (s.sql for s in diff(inspected, empty).statements))
    assert diff(inspected, inspected).statements == ()


def test_two_reads_of_a_database_share_every_string(new_database, sql):
    url = _database(new_database, sql)
    one, two = read_snapshot(url, SCHEMAS), read_snapshot(url, SCHEMAS)
    assert one == two and one.objects
    for (item, definition), (other_item, other_definition) in zip(sorted(one.objects.items()),
                                                                  sorted(two.objects.items())):
        assert item[1] is other_item[1] and definition is other_definition
    view = inspect_database(url, SCHEMAS).inspected
    ids = [table.columns["id"].name for table in view.tables.values()]
    assert len(ids) == 4 and all(name is ids[0] for name in ids)  # one "id" for every table's column


def test_owners_are_the_key_itself_unless_held(new_database, sql):
    snapshot = read_snapshot(_database(new_database, sql), SCHEMAS)
    assert snapshot.owners_of(("table", "public.plain")) == ("public.plain",)
    assert snapshot.owners_of(("column", "public.plain.org_id")) == ("public.plain",)
    assert snapshot.owners_of(("index", "public.plain_org_idx")) == ("public.plain_org_idx", "public.plain")
    assert snapshot.owners_of(("column", f'public.{ODD}.odd "col')) == (f"public.{ODD}",)
    assert snapshot.owners_of(("fact:relkind", "public.events")) == ("public.events",)
    assert snapshot.owners_of(("schema", "public")) == ()
    assert snapshot.owners_of(("table", "public.nothing")) == ()
    assert snapshot.fact("partition key") == {"public.events": "RANGE (day)"}

    without = snapshot.without({"public.events", "public.events_2026", f"public.{ODD}"})
    assert not [key for kind, key in without.objects if "events" in key or ODD in key]
    assert "public.events" not in without.fact("partition key") and "public.events" not in without.fact("relkind")
    assert ("column", "public.plain.org_id") in without.objects


def test_differences_are_every_differing_key_in_order():
    values = (None, "", "a", "b")
    keys = [("table", "public.a"), ("column", "public.a.x"), ("index", "public.i")]
    for left, right in itertools.product(itertools.product(values, repeat=3), repeat=2):
        mine = {k: v for k, v in zip(keys, left) if v is not None}
        theirs = {k: v for k, v in zip(keys, right) if v is not None}
        found = CatalogSnapshot(mine).differences(CatalogSnapshot(theirs))
        expected = [(kind, key, mine.get((kind, key)), theirs.get((kind, key))) for kind, key in sorted(keys)
                    if mine.get((kind, key)) != theirs.get((kind, key))]
        assert [(d.kind, d.key, d.before, d.after) for d in found] == expected
