"""Stage tests for admission: a declared statement is admitted only if it defines a schema object;
anything else is refused with file:line, its kind and the reason, before anything runs."""

import pytest

from reconcile_engine.declared.admission import admit, admit_queries
from reconcile_engine.errors import DeclaredStateError, RefusedStatementError

ADMITTED = [
    "CREATE TABLE t (id int PRIMARY KEY, org text NOT NULL DEFAULT current_setting('app.org', true))",
    "CREATE TABLE p (d date) PARTITION BY RANGE (d)",
    "CREATE TABLE p_2020 PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')",
    "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE t FORCE ROW LEVEL SECURITY",
    "CREATE POLICY p ON t USING (org = current_setting('app.org', true))",
    "CREATE UNIQUE INDEX CONCURRENTLY t_org_idx ON t (org)",
    "CREATE VIEW v WITH (security_invoker = true) AS SELECT * FROM t",
    "CREATE MATERIALIZED VIEW mv AS SELECT org, count(*) FROM t GROUP BY org",
    "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x + 1 $$",
    "CREATE OR REPLACE PROCEDURE pr() LANGUAGE plpgsql AS $$ BEGIN NULL; END $$",
    "CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "CREATE TYPE mood AS ENUM ('sad', 'ok')",
    "ALTER TYPE mood ADD VALUE 'happy'",
    "CREATE DOMAIN positive AS int CHECK (VALUE > 0)",
    "CREATE SEQUENCE s START 10",
    "CREATE SCHEMA reporting",
    "CREATE SCHEMA s2 AUTHORIZATION CURRENT_ROLE CREATE TABLE s2t (a int)",
    "CREATE EXTENSION IF NOT EXISTS pgcrypto",
    "COMMENT ON TABLE t IS 'tenants'",
    "GRANT SELECT ON t TO PUBLIC",
    "REVOKE ALL ON FUNCTION f(int) FROM PUBLIC",
    "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
    "SET search_path = public, extensions",
    "SET check_function_bodies = false",
    "RESET search_path",
    "CREATE AGGREGATE sum2(int) (SFUNC = int4pl, STYPE = int)",
    "CREATE STATISTICS st ON org, id FROM t",
    "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING",
]

REFUSED = [
    ("DROP DATABASE app WITH (FORCE)", "DROP DATABASE", "databases belong to the server"),
    ("CREATE DATABASE evil", "CREATE DATABASE", "databases belong to the server"),
    ("ALTER DATABASE app SET work_mem = '1GB'", "ALTER DATABASE ... SET", "databases belong to the server"),
    ("ALTER DATABASE app OWNER TO bob", "ALTER ... OWNER TO", "databases belong to the server"),
    ("ALTER DATABASE app RENAME TO other", "RENAME", "databases belong to the server"),
    ("ALTER ROLE app_user RENAME TO other", "RENAME", "roles are global"),
    ("ALTER ROLE CURRENT_USER SET work_mem = '1GB'", "ALTER ROLE ... SET", "roles are global to the server"),
    ("CREATE ROLE evil SUPERUSER", "CREATE ROLE", "roles are global to the server"),
    ("CREATE USER evil", "CREATE ROLE", "roles are global"),
    ("DROP ROLE app_user", "DROP ROLE", "roles are global"),
    ("GRANT pg_execute_server_program TO app_user", "GRANT role", "roles are global"),
    ("ALTER SYSTEM SET work_mem = '1GB'", "ALTER SYSTEM", "it changes the server"),
    ("CREATE TABLESPACE evil LOCATION '/tmp'", "CREATE TABLESPACE", "it changes the server"),
    ("SET ROLE postgres", "SET ROLE", "it changes who runs the statements that follow"),
    ("SET SESSION AUTHORIZATION postgres", "SET SESSION_AUTHORIZATION", "it changes who runs"),
    ("SET session_replication_role = replica", "SET session_replication_role", "not a setting that shapes"),
    ("RESET ALL", "RESET ALL", "not a setting that shapes"),
    ("SELECT pg_terminate_backend(1)", "SELECT", "it runs a query or changes rows"),
    ("SELECT pg_catalog.set_config('search_path', '', false)", "SELECT", "it runs a query"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "SELECT", "it runs a query"),
    ("INSERT INTO t VALUES (1)", "INSERT", "it runs a query or changes rows"),
    ("UPDATE t SET org = 'x'", "UPDATE", "data step"),
    ("DELETE FROM t", "DELETE", "data step"),
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned'", "COPY", "it runs a query"),
    ("COPY t FROM '/etc/passwd'", "COPY", "it runs a query"),
    ("TRUNCATE t", "TRUNCATE", "it runs a query"),
    ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN", "it runs a query"),
    ("CREATE TABLE t2 AS SELECT * FROM t", "CREATE TABLE ... AS", "it runs a query"),
    ("SELECT * INTO t3 FROM t", "SELECT", "it runs a query"),
    ("REFRESH MATERIALIZED VIEW mv", "REFRESH MATERIALIZED VIEW", "it runs a query"),
    ("DO $$ BEGIN PERFORM 1; END $$", "DO", "it runs code while the declared state is built"),
    ("CALL pr()", "CALL", "it runs code"),
    ("LOAD 'auto_explain'", "LOAD", "it loads code into the server"),
    ("CREATE FUNCTION evil() RETURNS int LANGUAGE c AS '/lib/x86_64-linux-gnu/libc.so.6', 'system'",
     "a function in LANGUAGE c", "it loads code into the server"),
    ("CREATE FUNCTION evil() RETURNS int LANGUAGE internal AS 'int4pl'", "a function in LANGUAGE internal",
     "it loads code"),
    ("CREATE TRUSTED LANGUAGE plevil HANDLER evil_handler", "CREATE LANGUAGE", "it loads code"),
    ("CREATE EVENT TRIGGER e ON ddl_command_end EXECUTE FUNCTION f()", "CREATE EVENT TRIGGER",
     "it runs a function on every later DDL statement"),
    ("BEGIN", "transaction control (BEGIN, COMMIT, ...)", "reconcile decides where transactions begin and end"),
    ("COMMIT", "transaction control (BEGIN, COMMIT, ...)", "reconcile decides"),
    ("VACUUM t", "VACUUM/ANALYZE", "it maintains, locks or reads data"),
    ("LOCK TABLE t", "LOCK", "it maintains, locks or reads data"),
    ("CHECKPOINT", "CHECKPOINT", "it changes the server"),
    ("NOTIFY chan", "NOTIFY", "not a definition"),
    ("DROP TABLE IF EXISTS t", "DROP", "delete its declaration"),
    ("ALTER TABLE t RENAME TO t4", "RENAME", "declare the object under its final name"),
    ("ALTER FUNCTION f(int) SET SCHEMA reporting", "ALTER ... SET SCHEMA", "its final name and schema"),
    ("ALTER TABLE t OWNER TO postgres", "ALTER ... OWNER TO", "ownership is not compared"),
    ("ALTER FUNCTION f(int) OWNER TO postgres", "ALTER ... OWNER TO", "ownership is not compared"),
    ("CREATE SCHEMA s3 AUTHORIZATION postgres", "CREATE SCHEMA ... AUTHORIZATION", "ownership is not compared"),
    ("GRANT CONNECT ON DATABASE app TO PUBLIC", "GRANT/REVOKE on a database", "databases belong to the server"),
    ("GRANT SET ON PARAMETER work_mem TO PUBLIC", "GRANT/REVOKE on a server parameter", "it changes the server"),
    ("COMMENT ON ROLE postgres IS 'x'", "COMMENT on a role", "roles are global"),
    ("COMMENT ON DATABASE app IS 'x'", "COMMENT on a database", "databases belong"),
    ("CREATE SERVER other FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'db')", "CREATE SERVER",
     "it reaches other servers"),
    ("IMPORT FOREIGN SCHEMA public FROM SERVER other INTO public", "IMPORT FOREIGN SCHEMA", "it reaches other"),
    ("CREATE SUBSCRIPTION s CONNECTION 'host=db' PUBLICATION p", "CREATE SUBSCRIPTION", "it reaches other"),
    ("CREATE PUBLICATION p FOR ALL TABLES", "CREATE PUBLICATION", "it reaches other"),
    ("SECURITY LABEL ON TABLE t IS 'secret'", "SECURITY LABEL", "label provider"),
]


@pytest.mark.parametrize("sql", ADMITTED)
def test_definitions_are_admitted(sql):
    [statement] = admit(sql + ";", "schema/a.sql")
    assert statement.text == sql


@pytest.mark.parametrize("sql, kind, reason", REFUSED)
def test_everything_else_is_refused_with_its_kind_and_reason(sql, kind, reason):
    declared = f"CREATE TABLE t (id int);\n\n-- a hostile line\n{sql};\n"

    with pytest.raises(RefusedStatementError) as refused:
        admit(declared, "schema/a.sql")

    message = str(refused.value)
    assert message.startswith(f"schema/a.sql:4: {kind} is not allowed in a declared file: "), message
    assert reason in message


def test_schema_elements_are_checked_one_by_one():
    admit("CREATE SCHEMA s4 CREATE TABLE x (a int) CREATE VIEW y AS SELECT 1;", "schema/a.sql")


def test_a_rendered_file_is_named_as_rendered_and_a_syntax_error_keeps_its_line():
    with pytest.raises(RefusedStatementError, match=r"^schema/a.sql.j2 \(rendered\):2: SELECT is not allowed"):
        admit("CREATE TABLE t (id int);\nSELECT 1;", "schema/a.sql.j2 (rendered)")
    with pytest.raises(DeclaredStateError, match=r"^schema/a.sql:3: syntax error"):
        admit("CREATE TABLE t (id int);\n\nCREATE TABLE (;", "schema/a.sql")


def test_a_statement_hidden_after_a_comment_or_on_one_line_is_still_seen():
    with pytest.raises(RefusedStatementError, match=r"^schema/a.sql:1: DROP DATABASE"):
        admit("CREATE TABLE t (id int); /* looks harmless */ DROP DATABASE app;", "schema/a.sql")
    with pytest.raises(RefusedStatementError, match=r"^schema/a.sql:2: ALTER SYSTEM"):
        admit("-- CREATE TABLE t (id int);\nAlTeR   sYsTeM SET work_mem = '1GB'", "schema/a.sql")


@pytest.mark.parametrize("sql", ["SELECT * FROM users", "INSERT INTO users (id) VALUES ('x')",
                                 "UPDATE users SET email = 'x'", "DELETE FROM users",
                                 "WITH u AS (SELECT 1) SELECT * FROM u"])
def test_a_policy_test_may_hold_queries(sql):
    admit_queries(sql, "policies/tests/t.yaml: tests[1].sql")


@pytest.mark.parametrize("sql, kind", [
    ("RESET ROLE", "SET role"), ("SET ROLE postgres", "SET role"), ("SET SESSION AUTHORIZATION postgres",
                                                                       "SET session_authorization"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", "COPY"), ("DO $$ BEGIN END $$", "DO"), ("SELECT 1 INTO t", "SELECT ... INTO"),
    ("ALTER TABLE users DISABLE ROW LEVEL SECURITY", "AlterTable"), ("COMMIT", "transaction control (BEGIN, COMMIT, ...)"),
])
def test_a_policy_test_may_not_change_who_runs_it_or_anything_else(sql, kind):
    with pytest.raises(RefusedStatementError) as refused:
        admit_queries(sql, "policies/tests/t.yaml: tests[1].sql")
    assert str(refused.value).startswith(f"policies/tests/t.yaml: tests[1].sql:1: {kind} is not allowed in a policy test")
