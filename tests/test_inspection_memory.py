"""Stage 3 (inspect) held compactly: schemainspect's view frozen between diffs, each copy its own; strings
read once shared across snapshots; owners kept only where they are not the key itself. What these
tests hold is that the compact forms answer exactly as the plain ones did."""

import itertools

from reconcile_engine.diff.migra_diff import diff
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.connections import connected
from reconcile_engine.inspection import snapshot as snapshot_module
from reconcile_engine.inspection.snapshot import CatalogSnapshot, Scope, differences_in, read_snapshot, take_snapshot

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
    # Thawed, a view is the one read, object for object: what is shared stays shared, strings are shared.
    thawed, read = second.inspected, inspect_database(_database(new_database, sql), SCHEMAS).inspected
    _same_view(thawed, read, set())
    table = thawed.tables[key]
    assert thawed.relations[key] is table and thawed.selectables[key] is table
    assert all(thawed.indexes[name] is index for name, index in table.indexes.items()) and table.indexes
    assert table.columns["org_id"].dbtype is inspected.copy().inspected.tables[key].columns["org_id"].dbtype
    # Diffed again (and from the other side, as the reverse plan is), the frozen inspection says the same.
    assert [s.sql for s in diff(empty, inspected).statements] == first_plan
    assert any(s.startswith("drop table") for s in (s.sql for s in diff(inspected, empty).statements))
    assert diff(inspected, inspected).statements == ()


def _same_view(one, other, seen: set) -> None:
    """Structurally equal, schemainspect's objects attribute by attribute (the views hold cycles)."""
    if (id(one), id(other)) in seen:
        return
    seen.add((id(one), id(other)))
    assert type(one) is type(other)
    if isinstance(one, dict):
        assert list(one) == list(other)
        for name in one:
            _same_view(one[name], other[name], seen)
    elif isinstance(one, (list, tuple)):
        assert len(one) == len(other)
        for mine, theirs in zip(one, other):
            _same_view(mine, theirs, seen)
    elif type(one).__module__.startswith("schemainspect."):
        _same_view(vars(one), vars(other), seen)
    elif type(one).__module__.startswith("sqlalchemy."):
        assert str(one) == str(other)  # schemainspect's query texts
    else:
        assert one == other


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


def test_a_read_like_another_shares_its_keys_and_owners(new_database, sql):
    """A plan reads the declared state like the target's snapshot: equal keys and owners' tuples are
    the same objects, and what differs is read as it is."""
    url = _database(new_database, sql)
    target = read_snapshot(url, SCHEMAS)
    sql(url, "ALTER TABLE plain ADD COLUMN added text")
    alone, like = read_snapshot(url, SCHEMAS), read_snapshot(url, SCHEMAS, like=target)
    assert like == alone and like.owners == alone.owners and like.fingerprint == alone.fingerprint
    assert [d.key for d in target.differences(like)] == ["public.plain.added"]
    shared = {item: item for item in target.objects}
    assert all(item is shared[item] for item in like.objects if item in shared)
    assert not any(item is shared.get(item) for item in alone.objects)
    for item, names in like.owners.items():
        if item in target.owners:
            assert names is target.owners[item] or names != target.owners[item]
    assert like.owners[("column", "public.plain.added")] is target.owners[("column", "public.plain.org_id")]


def test_a_fingerprint_read_alone_is_the_snapshots_own(new_database, sql):
    """A layer's fingerprint is read without its snapshot (fingerprint_of): it must be the snapshot's,
    with grants compared or not, with an ignore glob, and after any change it must change too."""
    url = _database(new_database, sql)
    sql(url, "COMMENT ON TABLE plain IS 'kept'; CREATE VIEW plain_view AS SELECT id FROM plain")
    scopes = (SCHEMAS, Scope(("public",), privileges=True), Scope(("public",), ignore=("public.events*",)))
    with connected(url) as conn:
        before = {scope: snapshot_module.fingerprint_of(conn, scope) for scope in scopes}
        for scope in scopes:
            assert before[scope] == take_snapshot(conn, scope).fingerprint
    assert before[scopes[2]] != before[SCHEMAS]  # the glob left the partitioned table out
    sql(url, "ALTER TABLE plain ALTER COLUMN org_id DROP NOT NULL")
    with connected(url) as conn:
        for scope in scopes:
            after = snapshot_module.fingerprint_of(conn, scope)
            assert after == take_snapshot(conn, scope).fingerprint and after != before[scope]


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


def test_differences_in_a_database_answer_as_its_snapshot_without_holding_one_when_there_are_none(
        new_database, sql, monkeypatch):
    url = _database(new_database, sql)
    expected = read_snapshot(url, SCHEMAS)
    whole_snapshots = []

    def counted(conn, scope, like=None):
        whole_snapshots.append(scope)
        return take_snapshot(conn, scope, like)

    monkeypatch.setattr(snapshot_module, "take_snapshot", counted)

    def both(against):
        with connected(url) as conn:
            whole_snapshots.clear()
            found = differences_in(conn, SCHEMAS, against)
            return found, take_snapshot(conn, SCHEMAS).differences(against), len(whole_snapshots)

    found, truth, read_whole = both(expected)
    assert found == truth == [] and read_whole == 0  # the same: settled row by row, no snapshot held

    one_more = CatalogSnapshot({**expected.objects, ("table", "public.gone"): "x"})
    one_less = CatalogSnapshot({k: v for k, v in expected.objects.items() if k != ("index", "public.plain_org_idx")})
    changed = CatalogSnapshot({**expected.objects, ("column", "public.plain.org_id"): "bigint"})
    for against in (one_more, one_less, changed):
        found, truth, read_whole = both(against)
        assert found == truth and found and read_whole == 1

    # Names with dots make two columns of one key, "public.a.b.c" (a snapshot holds the last read): the
    # count says no, the whole snapshot says the same.
    sql(url, 'CREATE TABLE "a.b" (c int); CREATE TABLE a ("b.c" int)')
    collided = read_snapshot(url, SCHEMAS)
    found, truth, read_whole = both(collided)
    assert found == truth == [] and read_whole == 1
    # The key read twice stands in for an object the database lacks: rows read and objects expected are
    # as many, every row is as expected; the sum of hashes tells.
    lacking = CatalogSnapshot({**collided.objects, ("table", "public.missing"): ""})
    found, truth, read_whole = both(lacking)
    assert found == truth and [(d.kind, d.key) for d in found] == [("table", "public.missing")] and read_whole == 1

    sql(url, "ALTER TABLE plain ADD COLUMN note text; DROP INDEX plain_org_idx")
    found, truth, _ = both(expected)
    assert found == truth and {(d.kind, d.key) for d in found} >= {("column", "public.plain.note"),
                                                                  ("index", "public.plain_org_idx")}
    ignoring = Scope(("public",), ignore=("public.plain",))
    with connected(url) as conn:
        assert differences_in(conn, ignoring, read_snapshot(url, ignoring)) == []


def test_what_a_phase_let_go_is_freed_at_once_even_in_cycles():
    """give_back_freed: a view let go (schemainspect's objects refer to each other) is freed before the
    next phase allocates, not whenever the cycle collector next runs."""
    import gc
    import weakref

    from reconcile_engine.process_memory import give_back_freed, share_arenas

    class Node:
        pass

    share_arenas()  # harmless to call again, and on any platform
    gc.disable()  # as while a view is thawed
    try:
        first, second = Node(), Node()
        first.other, second.other = second, first
        gone = weakref.ref(first)
        del first, second
        assert gone() is not None  # only a cycle collection frees it
        give_back_freed()
        assert gone() is None
    finally:
        gc.enable()
