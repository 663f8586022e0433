"""Declared files are untrusted input: whatever a pull request puts in them, plan, drift and lint act
only inside reconcile's scratch space. Each attack runs as a non-superuser owner of the target (the
usual CI role: CREATEDB and CREATEROLE, for the scratch database and its build role) and as a
superuser; afterwards the target exists, no database or role setting changed, no database or role
was made, the server wrote no file, no other session was terminated."""

import os
import re
import uuid
from urllib.parse import urlsplit

import psycopg2
import pytest

from reconcile_engine.cli import run

ATTACK_FILE = "schema/999_attack.sql"

# name -> (declared SQL, the kind the refusal names)
ATTACKS = {
    "drop the target": ("DROP DATABASE {db} WITH (FORCE);", "DROP DATABASE"),
    "set a setting on the target": ("ALTER DATABASE {db} SET work_mem = '1GB';", "ALTER DATABASE ... SET"),
    "set a setting on the role": ("ALTER ROLE CURRENT_USER SET work_mem = '1GB';", "ALTER ROLE ... SET"),
    "create a database": ("CREATE DATABASE {db}_evil;", "CREATE DATABASE"),
    "terminate a session": ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim';",
                            "SELECT"),
    "run a program on the server": ("COPY (SELECT 1) TO PROGRAM 'touch {pwned}';", "COPY"),
    "change the server": ("ALTER SYSTEM SET work_mem = '1GB';", "ALTER SYSTEM"),
    "create a superuser": ("CREATE ROLE {db}_evil SUPERUSER LOGIN;", "CREATE ROLE"),
    "write into the target through dblink": (
        "CREATE EXTENSION IF NOT EXISTS dblink;\n"
        "SELECT dblink_exec('dbname={db}', 'CREATE TABLE pwned (id int)');", "SELECT"),
}

# The same, from inside a declared function that PostgreSQL calls during DDL: a column added with a
# non-volatile default evaluates it (in the declared build, and in the plan's rehearsal on a target
# that has the table), a materialized view runs its query. Stubbed, it never runs.
ATTACK_FUNCTION = """
CREATE FUNCTION attack() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim';
    EXECUTE 'ALTER ROLE ' || quote_ident(session_user) || ' SET work_mem = ''1GB''';
    EXECUTE 'ALTER DATABASE {db} SET work_mem = ''1GB''';
    EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {pwned}''';
    RETURN 1;
END $$;
CREATE TABLE attacked (id int PRIMARY KEY, a int);
ALTER TABLE attacked ADD COLUMN c int DEFAULT attack();
CREATE MATERIALIZED VIEW attacked_mv AS SELECT attack() AS a;
"""


def _url(base, user, password, database):
    parts = urlsplit(base)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:{password}@{host}", path="/" + database).geturl()


def server_state(sql, admin_url):
    """Everything a declared file must not change, read as a superuser."""
    [row] = sql(admin_url, """
        SELECT (SELECT array_agg(datname::text ORDER BY datname) FROM pg_database),
               (SELECT array_agg(rolname::text ORDER BY rolname) FROM pg_roles),
               (SELECT array_agg(concat_ws('/', setdatabase, setrole, setconfig::text) ORDER BY 1)
                FROM pg_db_role_setting),
               (SELECT array_agg(name || '=' || coalesce(setting, '') ORDER BY name) FROM pg_file_settings
                WHERE sourcefile LIKE '%%postgresql.auto.conf')""")
    return row


@pytest.fixture
def arena(pg_server_url, sql):
    """A target owned by a non-superuser CI role, a superuser, an application session, and a path the
    server must never write."""
    suffix = uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    owner, database = f"ci_{suffix}", f"rt_attacked_{suffix}"
    sql(pg_server_url, f"CREATE ROLE {owner} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'")
    sql(pg_server_url, f"CREATE DATABASE {database} OWNER {owner} TEMPLATE template0")
    superuser = urlsplit(pg_server_url)._replace(path="/" + database).geturl()
    victim = psycopg2.connect(superuser, application_name="victim")
    pwned = f"/tmp/reconcile-pwned-{suffix}"
    try:
        yield {"owner": _url(pg_server_url, owner, password, database), "superuser": superuser,
               "database": database, "victim": victim, "pwned": pwned, "admin": pg_server_url, "sql": sql}
    finally:
        victim.close()
        sql(pg_server_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        sql(pg_server_url, f"DROP DATABASE IF EXISTS {database}_evil")
        sql(pg_server_url, f"DROP ROLE IF EXISTS {database}_evil")
        sql(pg_server_url, f"ALTER ROLE {owner} RESET ALL")
        sql(pg_server_url, f"DROP ROLE IF EXISTS {owner}")
        sql(pg_server_url, "ALTER SYSTEM RESET work_mem")
        if os.path.exists(pwned):
            os.unlink(pwned)


def _reconcile(capsys, project, url, *args):
    as_of = ["--as-of", "2026-06-01"] if args[0] in ("plan", "drift") else []
    code = run([*args, *as_of, "--project", str(project), "--database-url", url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _nothing_happened(arena, before):
    assert server_state(arena["sql"], arena["admin"]) == before
    assert not os.path.exists(arena["pwned"]), "the server ran a program"
    with arena["victim"].cursor() as cur:  # still alive
        cur.execute("SELECT 1")
    assert arena["sql"](arena["superuser"], "SELECT to_regclass('pwned')")[0][0] is None


@pytest.mark.parametrize("as_role", ["owner", "superuser"])
@pytest.mark.parametrize("command", ["plan", "drift", "lint"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_attack_in_a_declared_file_is_refused_before_anything_runs(attack, command, as_role, arena, project,
                                                                        capsys, sql):
    statement, kind = ATTACKS[attack]
    (project / ATTACK_FILE).write_text("-- looks like a schema change\n"
                                       + statement.format(db=arena["database"], pwned=arena["pwned"]) + "\n")
    before = server_state(sql, arena["admin"])

    code, out, err = _reconcile(capsys, project, arena[as_role], command)

    assert code == 1
    lines = err.strip().splitlines()
    line = 1 + len(statement.splitlines())  # the attack's last statement: anything before it is a definition
    assert len(lines) == 1 and lines[0].startswith(f"error: {ATTACK_FILE}:{line}: {kind} is not allowed in a "
                                                   f"declared file: "), err
    _nothing_happened(arena, before)


@pytest.mark.parametrize("as_role", ["owner", "superuser"])
def test_declared_code_that_postgres_would_call_during_the_build_never_runs(as_role, arena, project, capsys, sql):
    (project / ATTACK_FILE).write_text(ATTACK_FUNCTION.format(db=arena["database"], pwned=arena["pwned"]))
    sql(arena["owner"], "CREATE TABLE attacked (id int PRIMARY KEY, a int)")  # the plan adds the column
    before = server_state(sql, arena["admin"])

    for command in ("plan", "drift", "lint"):
        code, out, err = _reconcile(capsys, project, arena[as_role], command)
        assert code in (0, 2), (command, err)  # built and compared: drift finds the empty target differs

    _nothing_happened(arena, before)
    plan = sorted((project / "migrations").glob("*.sql"))[-1].read_text()
    assert 'add column "c" integer default attack()' in plan  # what the reviewer sees, and apply would run


# name -> (data step, what PostgreSQL 15 or 18 answers the build role)
DATA_STEP_ATTACKS = {
    "terminate a session": ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                            "'victim';", r"permission denied to terminate process|must be a superuser to terminate"),
    "run a program on the server": ("COPY (SELECT 1) TO PROGRAM 'touch {pwned}';",
                                    r"(permission denied|must be superuser).* to COPY to or from an external program"),
    "set a setting on the target": ("ALTER DATABASE {db} SET work_mem = '1GB';", r"must be owner of database"),
    "create a role": ("CREATE ROLE {db}_evil SUPERUSER;", r"permission denied to create role|must be superuser to create"),
    "read a server file": ("SELECT pg_read_file('/etc/hostname');", r"permission denied for function pg_read_file"),
}


@pytest.mark.parametrize("attack", sorted(DATA_STEP_ATTACKS))
def test_a_data_step_is_rehearsed_as_the_build_role_never_as_the_deploy_role(attack, arena, project, capsys, sql):
    """Data steps are reviewed code, but the rehearsal runs before the review: as the run's build role,
    even when the deploy role is a superuser."""
    statement, refusal = DATA_STEP_ATTACKS[attack]
    (project / "data").mkdir()
    (project / "data" / "step.sql").write_text(statement.format(db=arena["database"], pwned=arena["pwned"]) + "\n")
    before = server_state(sql, arena["admin"])

    code, out, err = _reconcile(capsys, project, arena["superuser"], "plan", "--data-after", "data/step.sql")

    assert code == 1
    assert "the plan fails on a copy of the target" in err and re.search(refusal, err), err
    assert not list((project / "migrations").glob("*.sql"))
    _nothing_happened(arena, before)


def test_a_ci_role_that_cannot_create_roles_is_told_where_to_build_instead(arena, project, capsys, sql, pg_server_url):
    owner = urlsplit(arena["owner"]).username
    sql(pg_server_url, f"ALTER ROLE {owner} NOCREATEROLE")
    before = server_state(sql, arena["admin"])

    code, out, err = _reconcile(capsys, project, arena["owner"], "plan")

    assert code == 1
    assert "cannot create roles" in err and "scratch.mode to server or embedded" in err
    _nothing_happened(arena, before)


def test_a_template_cannot_reach_python(project, target_url, capsys):
    (project / "schema" / "999_attack.sql.j2").write_text(
        "CREATE TABLE t (id int);\n-- {{ ''.__class__.__mro__[1].__subclasses__() }}\n")

    code, out, err = _reconcile(capsys, project, target_url, "plan")

    assert code == 1
    assert err.startswith("error: schema/999_attack.sql.j2: template error: ") and "unsafe" in err
    assert not list((project / "migrations").glob("*.sql"))


@pytest.mark.parametrize("setting", ["migrations_dir: ../../elsewhere", "migrations_dir: /tmp",
                                     "embedded_dir: ../outside"])
def test_the_config_cannot_point_reconcile_outside_the_project(setting, project, target_url, capsys):
    (project / "reconcile.yaml").write_text(setting + "\n")

    code, out, err = _reconcile(capsys, project, target_url, "plan")

    assert code == 1
    assert "must be a folder inside the project" in err
    assert not (project.parent.parent / "elsewhere").exists()


@pytest.mark.parametrize("yaml_text, expected", [
    ("role: app_user\nsetup: ALTER SYSTEM SET work_mem = '1GB'\ntests:\n  - {sql: SELECT 1, expect_count: 1}\n",
     "policies/tests/attack.yaml: setup:1: ALTER SYSTEM is not allowed in a declared file"),
    ("role: app_user\ntests:\n  - {sql: \"RESET ROLE; COPY (SELECT 1) TO PROGRAM 'id'\", expect_count: 0}\n",
     "policies/tests/attack.yaml: tests[1].sql:1: SET role is not allowed in a policy test"),
    ("role: app_user\ntests:\n  - {sql: \"SELECT 1; SET SESSION AUTHORIZATION postgres\", expect_count: 0}\n",
     "policies/tests/attack.yaml: tests[1].sql:1: SET session_authorization is not allowed in a policy test"),
])
def test_a_policy_test_file_is_untrusted_too(yaml_text, expected, project, target_url, capsys):
    (project / "policies" / "tests" / "attack.yaml").write_text(yaml_text)

    code, out, err = _reconcile(capsys, project, target_url, "test")

    assert code == 1
    assert err.startswith(f"error: {expected}"), err


def test_dblink_made_available_by_the_config_cannot_reach_the_target(arena, project, capsys, sql):
    """reconcile.yaml is in the pull request too: it can ask for dblink in the scratch database (made
    there by a superuser CI role), but the build role has no password to connect anywhere with."""
    if not sql(arena["admin"], "SELECT count(*) FROM pg_available_extensions WHERE name = 'dblink'")[0][0]:
        pytest.skip("this server has no dblink")
    (project / "reconcile.yaml").write_text("extensions: [dblink]\n")
    sql(arena["superuser"], "CREATE EXTENSION dblink")  # the target has it too: the copy matches it
    (project / "data").mkdir()
    for target in (f"dbname={arena['database']}", f"host=127.0.0.1 dbname={arena['database']} user=postgres"):
        (project / "data" / "step.sql").write_text(f"SELECT dblink_exec('{target}', 'CREATE TABLE pwned (id int)');\n")
        before = server_state(sql, arena["admin"])

        code, out, err = _reconcile(capsys, project, arena["superuser"], "plan", "--data-after", "data/step.sql")

        assert code == 1 and "the plan fails on a copy of the target" in err, err
        assert re.search(r"password is required|password or GSSAPI delegated credentials required|"
                         r"could not establish connection", err), err
        _nothing_happened(arena, before)
