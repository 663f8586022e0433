"""The diff kept to the relations that differ (diff/scope.py), which a plan and its reverse are made
from: on every fixture, both ways, it says exactly what the whole diff says, and leaves out a table
and a view that nothing touches. Then the rehearsal: a scoped reverse leads back, and one that does
not is rolled back and the reverse diffed whole; and a scoped plan that does not reach the declared
state is made again from the whole diff."""

import contextlib
import logging

import pytest
import yaml

import reconcile_engine as reconcile
from test_corrections import CASES, FIXTURES, _load
from test_rehearse import rehearsal_stage

from reconcile_engine.diff import scope as diff_scope
from reconcile_engine.diff.migra_diff import diff
from reconcile_engine.diff.scope import relations, relations_to_diff
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.inspection.snapshot import Scope, read_snapshot
from reconcile_engine.rehearsal import proof as proof_module, rehearse as rehearse_module
from reconcile_engine.rehearsal.rehearse import rehearse

UNRELATED = """
CREATE TABLE scope_unrelated (id int PRIMARY KEY, note text);
CREATE INDEX scope_unrelated_note ON scope_unrelated (note);
CREATE VIEW scope_unrelated_view AS SELECT id FROM scope_unrelated;
"""
LEFT_OUT = {"public.scope_unrelated", "public.scope_unrelated_view"}


@contextlib.contextmanager
def _rehearsal_log(caplog, module=rehearse_module):
    """The rehearsal's debug lines (or `module`'s) in caplog, whatever the command line set up before (it
    stops the engine's records from reaching the root logger)."""
    logger = logging.getLogger(module.__name__)
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)


def _sql(statements) -> list[str]:
    return [s.sql for s in statements]


@pytest.mark.parametrize("case", CASES)
def test_a_diff_kept_to_what_differs_says_what_the_whole_diff_says(case, new_database):
    folder = FIXTURES / case
    expect = yaml.safe_load((folder / "expect.yaml").read_text())
    a_url, b_url = new_database(), new_database()
    try:
        _load(a_url, (folder / "a.sql").read_text() + UNRELATED)
        _load(b_url, (folder / "b.sql").read_text() + UNRELATED)
    except Exception as exc:  # noqa: BLE001 (a case for a later server)
        if expect.get("server_min"):
            pytest.skip(f"PostgreSQL {expect['server_min']} or later: {exc}")
        raise
    scope = Scope(("public",), privileges=bool(expect.get("privileges")))
    a, b = inspect_database(a_url, scope), inspect_database(b_url, scope)
    url_of = {id(a): a_url, id(b): b_url}
    for before, after in ((b, a), (a, b)):  # the reverse, as a plan makes it, and the forward diff
        kept = relations_to_diff(before.snapshot, after.snapshot)
        if kept is None:  # something that is not a relation differs: the whole diff, always
            assert any(d.kind not in diff_scope.BELONGING_KINDS or not set(before.snapshot.belongs_to(d, after.snapshot))
                       & (relations(before.snapshot) | relations(after.snapshot))
                       for d in before.snapshot.differences(after.snapshot))
            continue
        assert kept.isdisjoint(LEFT_OUT)
        left_out = (relations(before.snapshot) | relations(after.snapshot)) - kept
        scoped = diff(before.without(left_out), after.without(left_out))
        whole = _sql(diff(before, after).statements)
        assert _sql(scoped.statements) == whole
        # schemainspect's views read without those relations at all, as a plan reads them: the same
        read = [inspect_database(url_of[id(side)], scope, snapshot=side.snapshot, leaving_out=frozenset(left_out))
                for side in (before, after)]
        assert all(side.partial is None or side.partial <= left_out for side in read)
        assert _sql(diff_scope.diff_on(kept, *read).statements) == whole


def test_what_belongs_to_no_relation_leaves_nothing_out(new_database):
    a_url, b_url = new_database(), new_database()
    _load(a_url, UNRELATED + "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';")
    _load(b_url, UNRELATED + "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2';")
    scope = Scope(("public",))
    assert relations_to_diff(read_snapshot(a_url, scope), read_snapshot(b_url, scope)) is None


def test_views_and_partitions_go_with_what_they_depend_on(new_database):
    common = """
        CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
        CREATE VIEW recent AS SELECT id FROM events;
        CREATE VIEW recent_ids AS SELECT id FROM recent;
    """ + UNRELATED
    a_url, b_url = new_database(), new_database()
    _load(a_url, common)
    _load(b_url, common + "CREATE INDEX events_2026_at ON events_2026 (at);")
    scope = Scope(("public",))
    kept = relations_to_diff(read_snapshot(b_url, scope), read_snapshot(a_url, scope))
    assert kept == {"public.events", "public.events_2026", "public.events_2027", "public.recent", "public.recent_ids"}


TARGET = "CREATE TABLE account (id bigint PRIMARY KEY, name text NOT NULL);" + UNRELATED
DECLARED = TARGET.replace("name text NOT NULL)", "name text NOT NULL, email text)") + """
CREATE VIEW account_emails AS SELECT id, email FROM account;
"""


@pytest.fixture
def stage(tmp_path, pg_server_url, target_url, sql):
    with rehearsal_stage(tmp_path, pg_server_url, target_url, sql, TARGET, DECLARED) as staged:
        yield staged


def test_the_reverse_is_diffed_on_what_differs_and_leads_back(stage, caplog):
    plan, copy, declared, current, desired, config = stage
    with _rehearsal_log(caplog):
        rehearsal = rehearse(plan, copy, declared, current, desired, config)
    assert rehearsal.converged and rehearsal.reverse_problem is None
    assert "the reverse plan was diffed on 2 relation(s)" in caplog.text
    assert _sql(rehearsal.reverse.statements) == _sql(diff(desired, current).statements)
    assert read_snapshot(declared.url, config.scope).differences(current.snapshot) == []


def test_a_scoped_reverse_that_fails_is_rolled_back_and_the_whole_diff_made(stage, caplog, monkeypatch):
    plan, copy, declared, current, desired, config = stage
    # A scope missing the view that reads the new column: its reverse drops the column first, which fails.
    monkeypatch.setattr(rehearse_module, "relations_to_diff", lambda before, after: frozenset({"public.account"}))
    with _rehearsal_log(caplog):
        rehearsal = rehearse(plan, copy, declared, current, desired, config)
    assert "the reverse plan is diffed whole: kept to 1 relation(s), it failed" in caplog.text
    assert "depend" in caplog.text
    assert rehearsal.converged and rehearsal.reverse is not None and rehearsal.reverse_problem is None
    assert any("drop view" in s.lower() for s in _sql(rehearsal.reverse.statements))
    # the whole reverse ran from the declared state (the failed one was rolled back) and led back
    assert read_snapshot(declared.url, config.scope).differences(current.snapshot) == []


def test_a_scoped_plan_that_fails_on_the_copy_is_made_again_whole(tmp_path, target_url, sql, monkeypatch):
    sql(target_url, TARGET)
    (tmp_path / "schema").mkdir()
    (tmp_path / "migrations").mkdir()
    (tmp_path / "schema" / "tables.sql").write_text(DECLARED)
    asked = []

    def too_small(before, after, differences=None):  # the view alone: its CREATE reads a column the plan then never adds
        asked.append(1)
        return frozenset({"public.account_emails"})

    monkeypatch.setattr(diff_scope, "relations_to_diff", too_small)
    planned = reconcile.plan(reconcile.load_project(tmp_path), target_url, name="email")
    assert asked  # the scoped plan was made first
    statements = _sql(planned.plan.statements)
    assert statements[0] == 'alter table "public"."account" add column "email" text;'
    assert statements[1].startswith('create or replace view "public"."account_emails" as')
    assert planned.file.exists() and planned.plan.rollback_note.endswith("(rehearsed: leads back exactly)")
    assert ("column", "public.account.email") not in read_snapshot(target_url, Scope(("public",))).objects


NEEDED = UNRELATED + """
CREATE TABLE parent_log (id int, note text);
CREATE TABLE child_log (extra text) INHERITS (parent_log);
CREATE TABLE "we'ird:na%me\\x.y" (id int PRIMARY KEY, "col:1" text);
CREATE TABLE changed (id int PRIMARY KEY, note text);
CREATE VIEW both_read AS SELECT c.id, s.note FROM changed c JOIN scope_unrelated s USING (id);
"""


@pytest.mark.parametrize("declared_change", [
    "CREATE INDEX changed_note ON changed (note);",  # a table a view reads with one left out
    "ALTER TABLE child_log ADD COLUMN more int;",  # a child whose parent is left out (INHERITS)
    'CREATE INDEX weird_col ON "we\'ird:na%me\\x.y" ("col:1");',  # a hostile name, kept
])
def test_a_view_read_without_relations_reads_what_those_kept_need(new_database, declared_change):
    """schemainspect reads a view's relations and a child's parents with them, even where the diff
    leaves them out (it looks them up as it reads); names with quotes, colons, percent signs, dots and
    backslashes are left out, or kept, by name; the diff is the whole one's."""
    a_url, b_url = new_database(), new_database()
    _load(a_url, NEEDED)
    _load(b_url, NEEDED + declared_change)
    scope = Scope(("public",))
    a, b = inspect_database(a_url, scope), inspect_database(b_url, scope)
    kept = relations_to_diff(a.snapshot, b.snapshot)
    left_out = frozenset((relations(a.snapshot) | relations(b.snapshot)) - kept)
    assert kept and left_out
    read = [inspect_database(url, scope, snapshot=side.snapshot, leaving_out=left_out)
            for url, side in ((a_url, a), (b_url, b))]
    assert all(side.partial and side.partial < left_out | frozenset(kept) and side.partial.isdisjoint(kept)
               for side in read)
    whole = _sql(diff(a, b).statements)
    assert whole and _sql(diff_scope.diff_on(kept, *read).statements) == whole
    # and the same diff when nothing is left out of the hostile name's table but itself
    weird = 'public.we\'ird:na%me\\x.y'
    assert weird in relations(a.snapshot)
    only_weird = inspect_database(a_url, scope, snapshot=a.snapshot, leaving_out=frozenset({weird}))
    assert only_weird.partial == {weird}
    assert not any("we'ird" in key for key in only_weird.inspected.tables)


def test_a_view_read_without_relations_is_never_diffed_whole(new_database):
    """A whole diff of such a view would drop what it lacks: refused (an internal error, never a plan);
    read again whole, it diffs as the whole view."""
    a_url, b_url = new_database(), new_database()
    _load(a_url, UNRELATED)
    _load(b_url, UNRELATED + "CREATE TABLE added (id int);")
    scope = Scope(("public",))
    a, b = inspect_database(a_url, scope), inspect_database(b_url, scope)
    partial = inspect_database(b_url, scope, snapshot=b.snapshot, leaving_out=frozenset(LEFT_OUT))
    # (a view's relations are read with it: the table alone is not left out while its view is read)
    assert inspect_database(b_url, scope, snapshot=b.snapshot, leaving_out=frozenset({"public.scope_unrelated"})).partial is None
    with pytest.raises(ValueError, match="read without 2 relation"):
        diff(a, partial)
    assert _sql(diff(a, partial.whole()).statements) == _sql(diff(a, b).statements)
    assert partial.whole() is partial.whole()  # read once


def test_a_plan_reads_only_the_relations_that_differ_and_says_what_the_whole_diff_says(
        tmp_path, target_url, new_database, sql, caplog):
    sql(target_url, TARGET)
    (tmp_path / "schema").mkdir()
    (tmp_path / "migrations").mkdir()
    (tmp_path / "schema" / "tables.sql").write_text(DECLARED)
    with _rehearsal_log(caplog, proof_module):
        planned = reconcile.plan(reconcile.load_project(tmp_path), target_url, name="email", write=False)
    # account and the new view that reads it; not scope_unrelated and its view
    assert "schemainspect reads 2 relation(s) of 4, on either side" in caplog.text
    declared_url = new_database()
    _load(declared_url, DECLARED)
    scope = Scope(("public",))
    whole = diff(inspect_database(target_url, scope), inspect_database(declared_url, scope))
    assert _sql(planned.plan.statements) == _sql(whole.statements)
    assert planned.plan.rollback_note.endswith("(rehearsed: leads back exactly)")
