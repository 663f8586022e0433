"""Stage tests for inert scratch builds: declared code never executes while a state is built or a plan
is rehearsed, although PostgreSQL evaluates functions during DDL in all the places below."""

import datetime as dt

import psycopg2
import pytest

from reconcile_engine.config import load_config
from reconcile_engine.declared.files import load_desired_state
from reconcile_engine.errors import DeclaredStateError
from reconcile_engine.diff.statement_facts import read_facts
from reconcile_engine.scratch.inert import InertFunctions, without_data
from reconcile_engine.scratch.databases import ScratchDatabase
from reconcile_engine.scratch.space import ScratchServer

# Called at all, it fails the build: a build that succeeds ran none of it.
BOOM = """
CREATE FUNCTION boom() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RAISE EXCEPTION 'declared code ran'; END $$;
CREATE FUNCTION plus_boom(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x + public.boom() $$;
CREATE FUNCTION stable_boom() RETURNS int LANGUAGE sql STABLE BEGIN ATOMIC SELECT public.boom(); END;
CREATE TABLE t (a int, b int);
"""
# Each is evaluated by PostgreSQL 15 and 18 while the statement runs, on an empty table.
CHANNELS = {
    "generated column": "CREATE TABLE g (a int, x int GENERATED ALWAYS AS (a + boom()) STORED);",
    "index expression": "CREATE INDEX t_expr ON t ((a + boom()));",
    "index predicate": "CREATE INDEX t_pred ON t (a) WHERE a > boom();",
    "SQL function inlined in an index": "CREATE INDEX t_inlined ON t (plus_boom(a));",
    "column added with a default": "ALTER TABLE t ADD COLUMN c int DEFAULT stable_boom();",
    "check constraint added": "ALTER TABLE t ADD CONSTRAINT t_b CHECK (b > boom());",
    "type change using an expression": "ALTER TABLE t ALTER COLUMN b TYPE bigint USING b + boom();",
    "domain default on a new column": "CREATE DOMAIN d AS int DEFAULT boom(); ALTER TABLE t ADD COLUMN e d;",
    "exclusion constraint": "CREATE TABLE ex (a int, EXCLUDE USING btree ((a + boom()) WITH =));",
    "materialized view": "CREATE MATERIALIZED VIEW mv AS SELECT boom() AS b;",
}


def _project(tmp_path, sql):
    (tmp_path / "schema").mkdir(exist_ok=True)
    (tmp_path / "schema" / "a.sql").write_text(sql)
    config = load_config(tmp_path)
    return config, load_desired_state(config, dt.date(2026, 6, 1))


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_postgres_runs_declared_code_here_but_an_inert_build_does_not(channel, tmp_path, pg_server_url, sql):
    declared = BOOM + CHANNELS[channel]
    config, desired = _project(tmp_path, declared)
    with ScratchDatabase(ScratchServer(pg_server_url, False), "inert") as scratch:
        with pytest.raises(psycopg2.Error, match="declared code ran"):
            sql(scratch.url, declared)  # as written: PostgreSQL calls boom()
    with ScratchDatabase(ScratchServer(pg_server_url, False), "inert") as scratch:
        scratch.load_desired(desired)  # inert: nothing called it

        # Afterwards every function has its real body again, as the inspection must see it.
        assert "declared code ran" in sql(scratch.url, "SELECT prosrc FROM pg_proc WHERE proname = 'boom'")[0][0]
        assert sql(scratch.url, "SELECT count(*) FROM pg_proc WHERE prosrc LIKE '%reconcile inert stub%'")[0][0] == 0
        with pytest.raises(psycopg2.Error, match="declared code ran"):
            sql(scratch.url, "SELECT boom()")


@pytest.mark.parametrize("declared, error", [
    ("CREATE FUNCTION boom_day() RETURNS date LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'declared code ran'; "
     "END $$;\nCREATE TABLE p (day date) PARTITION BY RANGE (day);\n"
     "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (boom_day()) TO ('2030-01-01');\n",
     "schema/a.sql:8: cannot specify NULL in range bound"),
    ("\n\nCREATE TABLE pk (a int) PARTITION BY RANGE ((a + boom()));\n",
     "schema/a.sql:8: cannot use constant expression as partition key"),
])
def test_where_a_stub_cannot_stand_in_the_build_fails_without_calling(declared, error, tmp_path, pg_server_url, sql):
    """A partition bound or key that calls a declared function with constant arguments: run as
    written, PostgreSQL calls it; inert, the stub's NULL makes the statement fail, naming its line."""
    config, desired = _project(tmp_path, BOOM + declared)
    with ScratchDatabase(ScratchServer(pg_server_url, False), "inert") as scratch:
        with pytest.raises(psycopg2.Error, match="declared code ran"):
            sql(scratch.url, BOOM + declared)  # as written: PostgreSQL calls it
    with ScratchDatabase(ScratchServer(pg_server_url, False), "inert") as scratch:
        with pytest.raises(DeclaredStateError) as failed:
            scratch.load_desired(desired)
    assert str(failed.value) == error


SHAPES = [
    ("CREATE FUNCTION s(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x $$", "SELECT s(1)"),
    ("CREATE FUNCTION s(x int DEFAULT 3, OUT y int, OUT z text) LANGUAGE sql AS $$ SELECT 1, 'a' $$", "SELECT * FROM s()"),
    ("CREATE FUNCTION s() RETURNS TABLE (a int) LANGUAGE sql AS $$ SELECT 1 $$", "SELECT * FROM s()"),
    ("CREATE FUNCTION s() RETURNS SETOF int LANGUAGE sql ROWS 5 AS $$ SELECT 1 $$", "SELECT * FROM s()"),
    ("CREATE FUNCTION s() RETURNS void LANGUAGE sql AS $$ SELECT 1 $$", "SELECT s()"),
    ("CREATE PROCEDURE s(INOUT x int) LANGUAGE plpgsql AS $$ BEGIN x := 2; END $$", "CALL s(1)"),
    ("CREATE FUNCTION s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$", None),
    ("CREATE FUNCTION s(anyelement) RETURNS anyelement LANGUAGE sql IMMUTABLE AS $$ SELECT $1 $$", "SELECT s(1)"),
    ("CREATE FUNCTION s(VARIADIC a int[]) RETURNS int LANGUAGE sql STRICT PARALLEL SAFE COST 5 "
     "SECURITY DEFINER SET search_path = public RETURN a[1]", "SELECT s(1, 2)"),
]


@pytest.mark.parametrize("create, call", SHAPES)
def test_each_kind_of_function_has_a_stub_that_does_nothing_and_gets_its_body_back(create, call, target_url):
    inert = InertFunctions()
    conn = psycopg2.connect(target_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for text in inert.texts(create + ";", read_facts(create).node):
                cur.execute(text)
            cur.execute("SELECT prosrc FROM pg_proc WHERE proname = 's'")
            assert "reconcile inert stub" in cur.fetchone()[0]
            if call:
                cur.execute(call)  # the stub: no error, nothing run
            inert.restore(conn)
            cur.execute("SELECT prosrc, (SELECT lanname FROM pg_language l WHERE l.oid = prolang) "
                        "FROM pg_proc WHERE proname = 's'")
            body, language = cur.fetchone()
        assert "reconcile inert stub" not in body
        assert language == ("plpgsql" if "plpgsql" in create else "sql")
    finally:
        conn.close()


def test_a_function_dropped_or_replaced_after_its_stub_is_not_brought_back(target_url, sql):
    inert = InertFunctions()
    statements = [
        "CREATE FUNCTION gone() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        "DROP FUNCTION gone();",
        "CREATE FUNCTION twice() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        "CREATE OR REPLACE FUNCTION twice() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;",
    ]
    for statement in statements:
        for text in inert.texts(statement, read_facts(statement).node):
            sql(target_url, text)
    conn = psycopg2.connect(target_url)
    conn.autocommit = True
    try:
        inert.restore(conn)
    finally:
        conn.close()

    assert sql(target_url, "SELECT count(*) FROM pg_proc WHERE proname = 'gone'")[0][0] == 0
    assert sql(target_url, "SELECT twice()")[0][0] == 2


@pytest.mark.parametrize("written, inert_form", [
    ("CREATE MATERIALIZED VIEW v AS SELECT 1", "CREATE MATERIALIZED VIEW v AS SELECT 1 WITH NO DATA"),
    ("create materialized view v as select 1 -- note", "create materialized view v as select 1 WITH NO DATA -- note"),
    ("CREATE MATERIALIZED VIEW v AS SELECT 1 WITH DATA;", "CREATE MATERIALIZED VIEW v AS SELECT 1 WITH NO DATA;"),
    ("CREATE MATERIALIZED VIEW v AS SELECT 1 WITH NO DATA", "CREATE MATERIALIZED VIEW v AS SELECT 1 WITH NO DATA"),
])
def test_materialized_views_are_built_without_data(written, inert_form):
    assert without_data(written) == inert_form
    assert InertFunctions().texts(written, read_facts(written).node) == (inert_form,)
    assert InertFunctions().texts("REFRESH MATERIALIZED VIEW CONCURRENTLY public.v", "RefreshMatViewStmt") == \
        ("REFRESH MATERIALIZED VIEW public.v WITH NO DATA",)
