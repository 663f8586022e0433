"""Pre-flight checks: a plan whose statements would fail on the target's rows is refused at plan time,
read-only, with the count and a query listing the rows; a passing check is shown in the plan's header.
On a real server, through the command line (the shipped project, applied, then given rows)."""

import contextlib
import hashlib
import json
import threading
import time

import psycopg2
import psycopg2.extras
import pytest

from conftest import server_major
from reconcile_engine.inspection.snapshot import Scope, read_snapshot

AS_OF = "2026-06-01"
USERS = 20


def _declare(project, path, old, new):
    file = project / path
    text = file.read_text()
    assert old in text, f"{path} does not hold {old!r}"
    file.write_text(text.replace(old, new, 1))


def _add_to_users(project, lines):
    _declare(project, "schema/020_users.sql", "created_at       timestamptz NOT NULL DEFAULT now()\n);",
             "created_at       timestamptz NOT NULL DEFAULT now(),\n    " + lines + "\n);")


def _state(url):
    """The target's schema fingerprint and a digest of every row of its tables."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            rows = []
            for table in ("organizations", "users", "learner_analytics", "aggregated_analytics"):
                cur.execute(f"SELECT coalesce(string_agg(t::text, '|' ORDER BY t::text), '') FROM {table} t")
                rows.append(cur.fetchone()[0])
    finally:
        conn.close()
    fingerprint = read_snapshot(url, Scope(("public", "archive"))).fingerprint
    return fingerprint, hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _migrations(project):
    return sorted(str(p.relative_to(project)) for p in (project / "migrations").rglob("*"))


@pytest.fixture
def live(cli, project, target_url, sql):
    """The shipped project applied, with rows: 2 organizations, 20 users, 20 learner_analytics rows."""
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'one'), ('o2', 'two')")
    sql(target_url, f"INSERT INTO users (id, email, organization_id) "
                    f"SELECT 'u' || g, 'user' || g || '@example.com', 'o1' FROM generate_series(1, {USERS}) g")
    sql(target_url, f"INSERT INTO learner_analytics (user_id, role_id, user_role, organization_id) "
                    f"SELECT 'u' || g, g::text, 'o1', 'o1' FROM generate_series(1, {USERS}) g")
    return target_url


def _refused(cli, project, url, *expected):
    """The plan is refused (exit 1), naming what is expected; nothing written, the target unchanged."""
    files, before = _migrations(project), _state(url)
    code, out, err = cli("plan", "--as-of", AS_OF)
    assert code == 1, out + err
    assert err.strip().splitlines()[-1].startswith("error: pre-flight check on the target's rows: statement "), err
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    assert "nothing was written" in err
    assert _migrations(project) == files and _state(url) == before
    return err


def _planned(cli, project, *args):
    """The header of the plan written (exit 0)."""
    code, out, err = cli("plan", "--as-of", AS_OF, *args)
    assert code == 0, err
    newest = sorted((project / "migrations").glob("*.sql"))[-1]
    return newest.read_text().split("-- ---- statements ----")[0]


def _preflight_lines(header):
    return [line for line in header.splitlines() if line.startswith("-- preflight: ")]


def test_a_new_not_null_column_without_a_default_is_refused(cli, project, live):
    _add_to_users(project, '"skillBand" text NOT NULL')
    _refused(cli, project, live, f"{USERS} of {USERS} rows would hold NULL in the new NOT NULL column skillBand",
             "list them: SELECT * FROM public.users LIMIT 100", "declare a DEFAULT for skillBand")

    # With a default every row gets one: nothing to count, the plan is written.
    _declare(project, "schema/020_users.sql", '"skillBand" text NOT NULL', "\"skillBand\" text NOT NULL DEFAULT 'b'")
    assert _preflight_lines(_planned(cli, project)) == []


def test_set_not_null_counts_the_nulls(cli, project, live, sql):
    _add_to_users(project, "nickname text")
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(live, "UPDATE users SET nickname = 'n' || id WHERE id NOT IN ('u1', 'u2', 'u3')")
    _declare(project, "schema/020_users.sql", "nickname text", "nickname text NOT NULL")
    _refused(cli, project, live, f"3 of {USERS} rows have NULL in nickname",
             "list them: SELECT * FROM public.users WHERE nickname IS NULL LIMIT 100", "--data-before")

    sql(live, "UPDATE users SET nickname = 'n' || id WHERE nickname IS NULL")
    [line] = _preflight_lines(_planned(cli, project))
    assert line.endswith(f"(SET NOT NULL nickname): 0 of {USERS} rows would fail"), line


def test_a_new_unique_index_counts_duplicates(cli, project, live):
    _declare(project, "schema/020_users.sql", "CREATE INDEX users_organization_id_idx ON users (organization_id);",
             "CREATE UNIQUE INDEX users_organization_id_idx ON users (organization_id);")
    _refused(cli, project, live, f"{USERS} of {USERS} rows share their (organization_id) with another row",
             "list them: SELECT organization_id, pg_catalog.count(*) FROM public.users WHERE organization_id IS NOT "
             "NULL GROUP BY organization_id HAVING pg_catalog.count(*) > 1 LIMIT 100")

    _declare(project, "schema/020_users.sql", "CREATE UNIQUE INDEX users_organization_id_idx ON users (organization_id);",
             "CREATE INDEX users_organization_id_idx ON users (organization_id);\n"
             "CREATE UNIQUE INDEX users_lower_email ON users (lower(email));")
    [line] = _preflight_lines(_planned(cli, project))
    assert "(unique index users_lower_email): 0 of 20 rows would fail" in line


def test_a_check_constraint_counts_the_rows_that_break_it(cli, project, live):
    _add_to_users(project, "CONSTRAINT email_long CHECK (char_length(email) > 17)")  # user1..user9 have 17
    _refused(cli, project, live, f"9 of {USERS} rows break CHECK email_long",
             "list them: SELECT * FROM public.users WHERE NOT ((pg_catalog.char_length(email) "
             "OPERATOR(pg_catalog.>) 17)) LIMIT 100", "fix those rows in a data step that runs first")

    _declare(project, "schema/020_users.sql", "CHECK (char_length(email) > 17)", "CHECK (email LIKE '%@%')")
    [line] = _preflight_lines(_planned(cli, project))
    assert line.endswith(f"(CHECK email_long): 0 of {USERS} rows would fail"), line


def test_a_foreign_key_counts_keys_without_a_referenced_row(cli, project, live, sql):
    sql(live, "UPDATE learner_analytics SET user_role = 'nobody' WHERE role_id = '7'")
    _declare(project, "schema/030_learner_analytics.sql", "    created_at       timestamptz NOT NULL DEFAULT now()\n);",
             "    created_at       timestamptz NOT NULL DEFAULT now(),\n"
             "    CONSTRAINT role_org FOREIGN KEY (user_role) REFERENCES organizations (id)\n);")
    _refused(cli, project, live, f"1 of {USERS} rows have a (user_role) that no row of public.organizations has",
             "list them: SELECT c.* FROM public.learner_analytics AS c WHERE c.user_role IS NOT NULL AND NOT EXISTS "
             "(SELECT 1 FROM public.organizations AS p WHERE p.id OPERATOR(pg_catalog.=) c.user_role) LIMIT 100",
             "add the missing rows to public.organizations")

    sql(live, "UPDATE learner_analytics SET user_role = 'o2' WHERE role_id = '7'")
    [line] = _preflight_lines(_planned(cli, project))
    assert line.endswith(f"(foreign key role_org): 0 of {USERS} rows would fail"), line


def test_a_type_change_counts_the_values_that_do_not_convert(cli, project, live, sql):
    sql(live, "UPDATE learner_analytics SET role_id = 'admin' WHERE role_id = '3'")
    _declare(project, "schema/030_learner_analytics.sql", "role_id          text NOT NULL",
             "role_id          integer NOT NULL")
    if server_major(live) >= 16:  # pg_input_is_valid counts them
        _refused(cli, project, live, f"1 of {USERS} rows hold a role_id that does not convert to integer",
                 "list them: SELECT * FROM public.learner_analytics WHERE role_id IS NOT NULL AND NOT "
                 "pg_catalog.pg_input_is_valid(CAST(role_id AS pg_catalog.text), 'pg_catalog.int4') LIMIT 100")
    else:  # the cast itself runs in the read-only transaction
        _refused(cli, project, live, "at least one row does not cast: invalid input syntax for type integer: \"admin\"")

    sql(live, "UPDATE learner_analytics SET role_id = '3' WHERE role_id = 'admin'")
    [line] = _preflight_lines(_planned(cli, project))
    assert line.endswith(f"(type change of role_id): 0 of {USERS} rows would fail"), line


EVENTS = """CREATE TABLE events (id int NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE TABLE events_2025 (id int NOT NULL, at date NOT NULL);
"""


def test_attaching_a_table_counts_its_rows_outside_the_bounds(cli, project, live, sql):
    (project / "schema" / "050_events.sql").write_text(EVENTS)
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(live, "INSERT INTO events_2025 SELECT g, DATE '2025-01-01' + g FROM generate_series(1, 10) g")
    sql(live, "INSERT INTO events_2025 VALUES (11, DATE '2024-12-31')")
    _declare(project, "schema/050_events.sql", "CREATE TABLE events_2025 (id int NOT NULL, at date NOT NULL);",
             "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');")
    _refused(cli, project, live, "1 of 11 rows of public.events_2025 fall outside its bounds",
             "list them: SELECT * FROM public.events_2025 WHERE NOT (((at IS NOT NULL) AND "
             "(at OPERATOR(pg_catalog.>=) '2025-01-01') AND (at OPERATOR(pg_catalog.<) '2026-01-01'))) LIMIT 100")

    sql(live, "DELETE FROM events_2025 WHERE id = 11")
    [line] = _preflight_lines(_planned(cli, project))
    assert line.endswith("(bounds of public.events_2025): 0 of 10 rows would fail"), line


def test_a_new_partition_counts_the_rows_its_parent_s_default_partition_holds_of_its_range(cli, project, live, sql):
    (project / "schema" / "050_events.sql").write_text(EVENTS)
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(live, "INSERT INTO events SELECT g, DATE '2024-01-01' + g FROM generate_series(1, 6) g")
    sql(live, "INSERT INTO events VALUES (7, DATE '2026-03-01'), (8, DATE '2026-04-01')")
    with (project / "schema" / "050_events.sql").open("a") as file:
        file.write("CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\n")
    _refused(cli, project, live, "2 of 8 rows of the DEFAULT partition public.events_default fall within the new "
                                 "partition's bounds", "list them: SELECT * FROM public.events_default WHERE",
             "'reconcile maintain' does so")

    sql(live, "DELETE FROM events WHERE id IN (7, 8)")
    [line] = _preflight_lines(_planned(cli, project))
    assert line.endswith("(rows in the DEFAULT partition public.events_default): 0 of 6 rows would fail"), line


def test_an_archive_name_already_taken_is_refused(cli, project, live, sql):
    sql(live, "CREATE SCHEMA archive; CREATE TABLE archive.aggregated_analytics_2020 (x int)")
    files, before = _migrations(project), _state(live)
    code, out, err = cli("plan", "--as-of", "2027-06-01")  # the 2020 partition expires: detached, archived
    assert code == 1, err
    assert "1 name(s) it moves into archive already taken there" in err, err
    assert "list them: SELECT n.nspname, c.relname AS name FROM pg_catalog.pg_class c" in err
    assert "set archive_schema in the partition spec" in err
    assert _migrations(project) == files and _state(live) == before

    sql(live, "DROP TABLE archive.aggregated_analytics_2020")
    code, out, err = cli("plan", "--as-of", "2027-06-01")
    assert code == 0, err
    header = sorted((project / "migrations").glob("*.sql"))[-1].read_text().split("-- ---- statements ----")[0]
    [line] = _preflight_lines(header)
    assert line.endswith("(name archive.aggregated_analytics_2020): 0 name(s) it moves into archive already "
                         "taken there"), line


HOSTILE = """CREATE TABLE side_effects (n int);
CREATE FUNCTION record_row(t text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN INSERT INTO side_effects VALUES (1); PERFORM pg_sleep(20); RETURN true; END $$;
CREATE FUNCTION looks_pure(t text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM pg_sleep(20); RETURN true; END $$;
"""


def test_a_check_that_calls_anything_but_immutable_built_in_functions_is_not_evaluated(cli, project, live, sql):
    (project / "schema" / "005_hostile.sql").write_text(HOSTILE)
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    victim = psycopg2.connect(live)  # a session a check calling pg_terminate_backend would end
    try:
        with victim.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        _add_to_users(project, f"CONSTRAINT kills CHECK (pg_terminate_backend({pid})),\n"
                               f"    CONSTRAINT sleeps CHECK (email <> '' OR pg_sleep(20) IS NULL),\n"
                               f"    CONSTRAINT writes CHECK (record_row(email)),\n"
                               f"    CONSTRAINT pretends CHECK (looks_pure(email))")
        started = time.monotonic()
        header = _planned(cli, project)
        assert time.monotonic() - started < 18  # nothing slept
        with victim.cursor() as cur:  # still connected
            cur.execute("SELECT 1")
        assert sql(live, "SELECT count(*) FROM side_effects") == [(0,)]
    finally:
        victim.close()
    lines = "\n".join(_preflight_lines(header))
    assert "(CHECK kills): not checked: function pg_terminate_backend is not an immutable built-in function" in lines
    assert "(CHECK sleeps): not checked: function pg_sleep is not an immutable built-in function" in lines
    assert "(CHECK writes): not checked: it calls record_row(), which is not a built-in function" in lines
    assert "(CHECK pretends): not checked: it calls looks_pure(), which is not a built-in function" in lines


def test_a_check_that_takes_longer_than_the_statement_timeout_is_reported_not_checked(cli, project, live):
    _declare(project, "reconcile.yaml", "statement_timeout: 5min", "statement_timeout: 1ms")
    _add_to_users(project, "CONSTRAINT heavy CHECK (repeat(email, 200000) <> '')")
    [line] = _preflight_lines(_planned(cli, project))
    assert "not checked: " in line and "took longer than 1ms (timeouts.statement_timeout)" in line, line


def test_checks_are_in_the_json_sealed_and_run_again_by_rehearse(cli, project, live, sql):
    _add_to_users(project, "CONSTRAINT email_at CHECK (email LIKE '%@%')")
    code, out, err = cli("plan", "--as-of", AS_OF, "--format", "json", "--dry-run")
    assert code == 0, err
    [check] = json.loads(out)["preflight"]
    assert check["passed"] is True and check["failing"] == 0 and check["rows"] == USERS
    assert check["check"].endswith(f"(CHECK email_at): 0 of {USERS} rows would fail")

    _planned(cli, project)
    plan = sorted((project / "migrations").glob("*.sql"))[-1]
    code, out, err = cli("status")
    assert code == 0 and "apply refuses it" not in out, out  # the header with its pre-flight line is sealed
    plan.write_text(plan.read_text().replace("0 of 20 rows would fail", "0 of 2 rows would fail"))
    assert "apply refuses it" in cli("status")[1]  # an edited pre-flight line breaks the seal

    sql(live, "UPDATE users SET email = 'nobody' WHERE id = 'u4'")
    files = _migrations(project)
    code, out, err = cli("rehearse", str(plan.relative_to(project)))
    assert code == 1, out + err
    assert f"1 of {USERS} rows break CHECK email_at" in err
    assert _migrations(project) == files


def test_checks_run_beside_the_rehearsal_in_one_read_only_transaction(cli, project, live, monkeypatch):
    """Every statement the checks send runs on one connection, in a transaction made read-only first,
    never committed, on the rehearsal's `beside` executor."""
    from reconcile_engine.rehearsal import preflight_checks

    sent, threads = [], []

    class Log:
        def write(self, text):
            sent.append(text.strip())

    @contextlib.contextmanager
    def logged(url, timeout, autocommit=True):
        conn = psycopg2.connect(url, connection_factory=psycopg2.extras.LoggingConnection)
        conn.initialize(Log())
        conn.autocommit = autocommit
        threads.append(threading.current_thread())
        try:
            yield conn
        finally:
            conn.close()

    monkeypatch.setattr(preflight_checks, "connected", logged)
    _add_to_users(project, "CONSTRAINT email_at CHECK (email LIKE '%@%')")
    code, out, err = cli("plan", "--as-of", AS_OF, "--dry-run")
    assert code == 0, err
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    assert sent[0] == "SET TRANSACTION READ ONLY", sent[:3]
    assert any("OPERATOR(pg_catalog.~~)" in s for s in sent)
    assert not any(s.upper().startswith(("COMMIT", "BEGIN", "SET SESSION", "RESET")) for s in sent), sent


# -- query building, from the statements' facts alone (no database) -----------------------------------

from reconcile_engine.diff.statement_facts import read_facts  # noqa: E402
from reconcile_engine.inspection.snapshot import CatalogSnapshot  # noqa: E402
from reconcile_engine.planning.build import PlannedStatement  # noqa: E402
from reconcile_engine.planning.expression_catalog import Cast, Catalog, Column, Routine  # noqa: E402
from reconcile_engine.planning.hazards import DELETES_DATA  # noqa: E402
from reconcile_engine.planning.preflight import Table, candidates  # noqa: E402
from reconcile_engine.planning.preflight_queries import queries  # noqa: E402

TEXT, INT4, BOOLEAN, FLOAT8, VOID = 25, 23, 16, 701, 2278
CATALOG = Catalog(
    functions={"char_length": (Routine((TEXT,), INT4, True),), "pg_sleep": (Routine((FLOAT8,), VOID, False),),
               "pg_terminate_backend": (Routine((INT4, 20), BOOLEAN, False, defaults=1),),
               "now": (Routine((), 1184, False),)},
    operators={">": (Routine((INT4, INT4), BOOLEAN, True, "o"),), "=": (Routine((TEXT, TEXT), BOOLEAN, True, "o"),),
               "~~": (Routine((TEXT, TEXT), BOOLEAN, True, "o"),)},
    casts=(Cast(INT4, FLOAT8, True, True),),
    types={"pg_catalog.text": (TEXT, "builtin"), "pg_catalog.int4": (INT4, "builtin")},
    string_types=frozenset({TEXT}))
USERS_TABLE = Table(200000, {"id": Column(TEXT, "text", True), "email": Column(TEXT, "text", True),
                             "age": Column(INT4, "integer", True), "org": Column(TEXT, "text", True),
                             "code": Column(TEXT, "text", True)})
TARGET = CatalogSnapshot({("table", "public.users"): "", ("table", "public.orgs"): ""})


def _statements(*sqls, hazards=()):
    return [PlannedStatement(sql, f"summary {n}", "data (x.sql)" if sql.startswith("update") else "migra",
                             read_facts(sql), hazards=hazards) for n, sql in enumerate(sqls, 1)]


def _queries(*sqls, hazards=(), major=18):
    tables = {"public.users": USERS_TABLE, "public.orgs": Table(3, {"id": Column(TEXT, "text", True)})}
    return queries(candidates(_statements(*sqls, hazards=hazards), TARGET), tables, CATALOG, major)


def test_queries_are_built_from_the_statements_facts():
    [new_column, not_null, unique, retype, check, foreign] = _queries(
        'alter table "public"."users" add column "skillBand" text not null;',
        'alter table "public"."users" alter column "email" set not null;',
        'create unique index users_email on public.users (email) where (age > 18);',
        'alter table "public"."users" add constraint "adult" CHECK ((age > 17)) not valid;',
        'alter table "public"."users" add constraint "org_fk" FOREIGN KEY (org) REFERENCES orgs(id) not valid;',
        'alter table "public"."users" alter column "code" set data type integer using "code"::integer;',
        'alter table "public"."users" validate constraint "adult";',
        'alter table "public"."users" validate constraint "org_fk";', hazards=(DELETES_DATA,))
    assert (new_column.statement, new_column.failing, new_column.sql, new_column.listing) == \
        (1, 200000, None, "SELECT * FROM public.users LIMIT 100")
    assert (not_null.label, not_null.sql) == \
        ("SET NOT NULL email", "SELECT pg_catalog.count(*) FROM public.users WHERE email IS NULL")
    assert unique.sql == ("SELECT COALESCE(pg_catalog.sum(n), 0) FROM (SELECT pg_catalog.count(*) AS n FROM public.users "
                          "WHERE email IS NOT NULL AND (age OPERATOR(pg_catalog.>) 18) GROUP BY email HAVING "
                          "pg_catalog.count(*) > 1) AS duplicates")
    assert (check.statement, check.label, check.sql) == (7, "CHECK adult", "SELECT pg_catalog.count(*) FROM "
                                                         "public.users WHERE NOT ((age OPERATOR(pg_catalog.>) 17))")
    assert (foreign.statement, foreign.sql) == (8, "SELECT pg_catalog.count(*) FROM public.users AS c WHERE c.org IS "
                                                   "NOT NULL AND NOT EXISTS (SELECT 1 FROM public.orgs AS p WHERE p.id "
                                                   "OPERATOR(pg_catalog.=) c.org)")
    assert (retype.statement, retype.sql) == (6, "SELECT pg_catalog.count(*) FROM public.users WHERE code IS NOT NULL "
                                                 "AND NOT pg_catalog.pg_input_is_valid(CAST(code AS pg_catalog.text), "
                                                 "'pg_catalog.int4')")
    [on_15] = _queries('alter table "public"."users" alter column "code" set data type integer using "code"::integer;',
                       hazards=(DELETES_DATA,), major=15)
    assert (on_15.sql, on_15.errors_mean_failure) == ("SELECT pg_catalog.count(CAST(code AS pg_catalog.int4)) FROM "
                                                      "public.users", True)


def test_what_is_not_counted():
    assert _queries('alter table "public"."users" add column "b" text not null default \'x\';') == []
    assert _queries('alter table "public"."users" add constraint "c" CHECK ((age > 1)) not valid;') == []
    assert _queries("create table public.t (id int);", 'alter table "public"."t" add column "b" text not null;') == []
    # rows emptied or moved by a hand-written step first: the target's rows no longer tell
    [after_data] = _queries("update users set email = 'x';", 'alter table "public"."users" alter column "email" set '
                                                             'not null;')
    assert after_data.not_checked == "the data step before it (statement 1) may change the rows it meets"
    # a column retyped earlier in the plan: its values on the target no longer tell
    [_, retyped] = _queries('alter table "public"."users" alter column "code" set data type integer;',
                            'alter table "public"."users" add constraint "c" CHECK ((code > 1));', hazards=(DELETES_DATA,))
    assert retyped.not_checked == "column code changes type earlier in this plan (statement 1)"


@pytest.mark.parametrize("check, reason", [
    ("pg_sleep(10) IS NULL", "function pg_sleep is not an immutable built-in function on the target"),
    ("pg_terminate_backend(42)", "function pg_terminate_backend is not an immutable built-in function"),
    ("audit.note(email)", "it calls audit.note(), which is not a built-in function"),
    ("note_row(email)", "it calls note_row(), which is not a built-in function"),
    ("age > (SELECT 1)", "it holds a subquery, which is not evaluated on the target"),
    ("email < CURRENT_USER", "it holds a clock or session value"),
    ("now() > '2020-01-01'", "function now is not an immutable built-in function"),
    ("email::public.shout = 'x'", "type public.shout is not a built-in type"),
    ("missing > 1", "column missing is not on the target's table yet"),
    ("age OPERATOR(public.>) 1", "operator public.> is not a built-in operator"),
])
def test_an_expression_that_is_not_provably_inert_is_not_evaluated(check, reason):
    [query] = _queries(f'alter table "public"."users" add constraint "c" CHECK ({check});')
    assert query.sql is None and reason in query.not_checked, query.not_checked


def test_constants_are_written_back_quoted_whatever_they_hold():
    [query] = _queries("alter table \"public\".\"users\" add constraint \"c\" CHECK (email = E'it''s \\\\'' OR 1=1 --');")
    assert query.sql == ("SELECT pg_catalog.count(*) FROM public.users WHERE NOT ((email OPERATOR(pg_catalog.=) "
                         "E'it''s \\\\'' OR 1=1 --'))")
