"""Extensions on the target (a faithful copy installs them; created, kept and dropped like any object)
and what reconcile infers from the declared files: the schemas and extensions they create, the roles
they name. End to end through the command line: plan, apply, drift."""

import datetime as dt
import os
import textwrap
import uuid

import pytest

import reconcile_engine as reconcile
from reconcile_engine.cli import run
from reconcile_engine.config import load_config
from reconcile_engine.declared.files import load_desired_state
from reconcile_engine.scratch.desired_cache import cache_key

from conftest import _execute, _with_database, embedded_server, server_major

AS_OF = "2026-06-01"


def _project(tmp_path, files, config=""):
    folder = tmp_path / f"app_{uuid.uuid4().hex[:6]}"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (folder / "migrations").mkdir(exist_ok=True)
    (folder / "reconcile.yaml").write_text(config)
    return folder


def _reconcile(capsys, folder, url, *args):
    dated = ["--as-of", AS_OF] if args[0] in ("plan", "drift") else []
    code = run([*args, *dated, "--project", str(folder), "--database-url", url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _plan_apply_drift(capsys, folder, url, *, destructive=False):
    """plan (rehearsed), apply, drift in sync; returns the plan's text."""
    code, out, err = _reconcile(capsys, folder, url, "plan")
    assert code == 0, out + err
    assert "converged" in out, out
    [plan] = sorted((folder / "migrations").glob("*.sql"))
    text = plan.read_text()
    code, out, err = _reconcile(capsys, folder, url, "apply", *(["--allow-destructive"] if destructive else []))
    assert code == 0, out + err
    code, out, err = _reconcile(capsys, folder, url, "drift")
    assert code == 0, out + err
    return text


def _statements(plan_text):
    """The plan's statements, in order (its lines that are neither comments nor blank)."""
    return [line for line in plan_text.splitlines() if line.strip() and not line.startswith("--")]


def _index(statements, fragment):
    return next(number for number, statement in enumerate(statements) if fragment in statement)


def _target_state(url):
    """What an error path must leave as it was: every schema, relation, column, extension and role, and
    no scratch database of this run."""
    return _execute(url, """
        SELECT (SELECT array_agg(nspname::text ORDER BY nspname) FROM pg_namespace),
               (SELECT array_agg(c.relname::text || ':' || a.attname ORDER BY 1)
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
               (SELECT array_agg(extname::text || ' ' || extversion ORDER BY extname) FROM pg_extension),
               (SELECT array_agg(rolname::text ORDER BY rolname) FROM pg_roles),
               (SELECT count(*) FROM pg_database WHERE datname LIKE %s)""",
                    (f"reconcile_scratch_%_{os.getpid()}_%",))  # this run's (other runs may share the server)


@pytest.fixture
def need(sql, target_url):
    def check(*extensions):
        for extension in extensions:
            if not sql(target_url, "SELECT 1 FROM pg_available_extensions WHERE name = %s", (extension,)):
                pytest.skip(f"this server has no {extension}")
    return check


# -- extensions on the target --------------------------------------------------------------------------

USERS_BEFORE = "CREATE EXTENSION citext; CREATE TABLE public.users (id int PRIMARY KEY, email citext NOT NULL);"
USERS_AFTER = "CREATE TABLE public.users (id int PRIMARY KEY, email citext NOT NULL, nickname citext);\n"


@pytest.mark.parametrize("config, declared", [
    ("extensions: [citext]\n", ""),  # listed only
    ("", "CREATE EXTENSION IF NOT EXISTS citext;\n"),  # created by a file, not listed
    ("extensions: [citext]\n", "CREATE EXTENSION citext;\n"),  # both: never 'already exists'
], ids=["listed", "created-by-a-file", "listed-and-created-by-a-file"])
def test_an_extension_on_the_target_stays_and_the_plan_rehearses_on_a_faithful_copy(
        capsys, tmp_path, target_url, sql, need, config, declared):
    need("citext")
    sql(target_url, USERS_BEFORE)
    folder = _project(tmp_path, {"schema/users.sql": declared + USERS_AFTER}, config)

    text = _plan_apply_drift(capsys, folder, target_url)

    assert _statements(text) == ['alter table "public"."users" add column "nickname" citext;']
    assert sql(target_url, "SELECT extname, n.nspname FROM pg_extension e JOIN pg_namespace n "
                           "ON n.oid = e.extnamespace WHERE extname = 'citext'") == [("citext", "public")]
    assert sql(target_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = 'public.users'::regclass AND attname = 'nickname'") == [("citext",)]
    # And again, now that nothing differs.
    assert _reconcile(capsys, folder, target_url, "plan", "--detailed-exitcode")[0] == 0


def test_an_extension_the_declared_state_no_longer_has_is_dropped_after_what_uses_it(
        capsys, tmp_path, target_url, sql, need):
    need("hstore")
    sql(target_url, """
        CREATE EXTENSION hstore;
        CREATE TABLE public.items (id int PRIMARY KEY, attributes hstore);
        CREATE FUNCTION public.first_key(h hstore) RETURNS text LANGUAGE sql AS $$ SELECT (akeys(h))[1] $$;
        CREATE VIEW public.item_colours AS SELECT id, attributes -> 'colour' AS colour FROM public.items;
    """)
    folder = _project(tmp_path, {"schema/items.sql": "CREATE TABLE public.items (id int PRIMARY KEY);\n"})

    text = _plan_apply_drift(capsys, folder, target_url, destructive=True)

    statements = _statements(text)
    drop = _index(statements, "drop extension")
    assert statements[drop] == 'drop extension if exists "hstore";'  # never CASCADE
    assert drop == len(statements) - 1
    assert _index(statements, 'drop column "attributes"') < drop
    assert _index(statements, '"first_key"') < drop and _index(statements, '"item_colours"') < drop
    assert "DESTRUCTIVE: drops column public.items.attributes" in text
    assert sql(target_url, "SELECT count(*) FROM pg_extension WHERE extname = 'hstore'") == [(0,)]


@pytest.mark.parametrize("with_table", [True, False], ids=["existing-table", "empty-database"])
def test_a_new_extension_is_created_before_what_uses_it(capsys, tmp_path, target_url, sql, need, with_table):
    need("hstore")
    if with_table:
        sql(target_url, "CREATE TABLE public.items (id int PRIMARY KEY)")
    folder = _project(tmp_path, {"schema/items.sql": """
        CREATE EXTENSION IF NOT EXISTS hstore;
        CREATE TABLE public.items (id int PRIMARY KEY, attributes hstore);
        CREATE INDEX items_attributes ON public.items USING gist (attributes);
    """})

    text = _plan_apply_drift(capsys, folder, target_url)

    statements = _statements(text)
    create = _index(statements, "create extension")
    assert statements[create].startswith('create extension if not exists "hstore" with schema "public"')
    assert create < _index(statements, '"attributes"') and create < _index(statements, "USING gist")
    assert sql(target_url, "SELECT count(*) FROM pg_extension WHERE extname = 'hstore'") == [(1,)]


def test_an_extension_listed_in_the_config_that_the_target_lacks_is_planned(capsys, tmp_path, target_url, sql, need):
    """The copy of the target has only the target's extensions: a listed one the target lacks is created
    by the plan (before, it was made in the copy too, which then was not the target)."""
    need("citext")
    sql(target_url, "CREATE TABLE public.users (id int PRIMARY KEY)")
    folder = _project(tmp_path, {"schema/users.sql": "CREATE TABLE public.users (id int PRIMARY KEY, email citext);\n"},
                      "extensions: [citext]\n")

    statements = _statements(_plan_apply_drift(capsys, folder, target_url))

    assert _index(statements, 'create extension if not exists "citext"') < _index(statements, '"email" citext')


# -- schemas the declared files create --------------------------------------------------------------------

def test_a_schema_a_declared_file_creates_is_managed_without_being_listed(capsys, tmp_path, target_url, sql):
    folder = _project(tmp_path, {
        "schema/000_app.sql": "CREATE SCHEMA app;\n",
        "schema/items.sql": """
            CREATE TABLE app.items (id int PRIMARY KEY, name text);
            CREATE TABLE app.tags (id int PRIMARY KEY);
        """,
    }, "managed_schemas: [public]\n")
    assert reconcile.load_project(folder).config.managed_schemas == ("public", "app")

    text = _plan_apply_drift(capsys, folder, target_url)

    assert 'create schema if not exists "app";' in _statements(text)
    assert sql(target_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'app'") == [(2,)]
    # Managed: a table no longer declared in it is planned for removal.
    (folder / "schema" / "items.sql").write_text("CREATE TABLE app.items (id int PRIMARY KEY, name text);\n")
    for old in (folder / "migrations").glob("*.sql"):
        old.unlink()  # applied; the history keeps it
    code, out, err = _reconcile(capsys, folder, target_url, "drift")
    assert code == 2 and "app.tags" in out, out + err
    text = _plan_apply_drift(capsys, folder, target_url, destructive=True)
    assert 'drop table "app"."tags";' in _statements(text)


def test_inferred_schemas_extensions_and_roles_enter_the_cache_key(tmp_path):
    folder = _project(tmp_path, {"schema/app.sql": """
        CREATE SCHEMA app;
        CREATE EXTENSION IF NOT EXISTS citext;
        CREATE TABLE app.items (id int PRIMARY KEY);
        GRANT SELECT ON app.items TO reporting;
    """})
    listed = load_config(folder)
    inferred = reconcile.load_project(folder).config
    assert inferred.declared_schemas == ("app",) and inferred.declared_extensions == ("citext",)
    assert inferred.referenced_roles == (("reporting", "schema/app.sql:5"),)
    desired = load_desired_state(inferred, dt.date(2026, 6, 1))
    assert cache_key(desired, listed, "v") != cache_key(desired, inferred, "v")


# -- declared files are untrusted: a CREATE SCHEMA cannot make reconcile manage what it must not touch --

@pytest.mark.parametrize("schema, reason", [
    ("pg_catalog", "pg_catalog is PostgreSQL's own schema"),
    ("information_schema", "information_schema is PostgreSQL's own schema"),
    ("pg_toast", "pg_toast is PostgreSQL's own schema"),
    ("reconcile", "reconcile is reconcile's own schema (the history of what was applied)"),
    ("reconcile_conversion", "reconcile_conversion is reconcile's own schema (where a table converted"),
    ("pgboss", "pgboss is listed under excluded_schemas: in reconcile.yaml, so reconcile never touches it"),
    ("auth", "auth is listed under external_schemas: in reconcile.yaml"),
])
@pytest.mark.parametrize("command", ["plan", "drift", "apply"])
def test_a_declared_create_schema_of_a_schema_reconcile_must_not_manage_is_refused(
        capsys, tmp_path, target_url, sql, schema, reason, command):
    # A target that has been applied to before (its history schema), with an excluded schema holding a table.
    sql(target_url, "CREATE SCHEMA pgboss; CREATE TABLE pgboss.job (id int); CREATE SCHEMA auth")
    folder = _project(tmp_path, {"schema/users.sql": "CREATE TABLE public.users (id int PRIMARY KEY);\n"},
                      "excluded_schemas: [pgboss]\nexternal_schemas: [auth]\n")
    _plan_apply_drift(capsys, folder, target_url)
    assert sql(target_url, "SELECT count(*) FROM reconcile.history") == [(1,)]
    (folder / "schema" / "999_takeover.sql").write_text(
        f"-- the whole schema, declared empty\nCREATE SCHEMA IF NOT EXISTS {schema};\n")
    before, plans = _target_state(target_url), sorted((folder / "migrations").rglob("*.sql"))

    code, out, err = _reconcile(capsys, folder, target_url, command)

    assert code == 1 and out == "", out + err
    assert err == (f"error: schema/999_takeover.sql:2: CREATE SCHEMA {schema} is not allowed in a declared file: "
                   f"{reason}" + err.split(reason, 1)[1])
    assert "becomes a managed schema" in err and len(err.splitlines()) == 1
    assert _target_state(target_url) == before
    assert sorted((folder / "migrations").rglob("*.sql")) == plans


def test_a_declared_create_schema_without_a_name_is_refused(capsys, tmp_path, target_url):
    folder = _project(tmp_path, {"schema/users.sql": "CREATE TABLE public.users (id int PRIMARY KEY);\n"
                                                     "CREATE SCHEMA AUTHORIZATION CURRENT_ROLE;\n"})
    before = _target_state(target_url)

    code, out, err = _reconcile(capsys, folder, target_url, "plan")

    assert code == 1 and err.startswith("error: schema/users.sql:2: CREATE SCHEMA without a name is not allowed "
                                        "in a declared file: its name would be the role that runs it"), err
    assert _target_state(target_url) == before


# -- roles the declared files name ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg18_servers(pg_server_url):
    """(target server, scratch server): two PostgreSQL 18 servers, so that a role can exist on the
    target's and not on the scratch one. The test server is the first when it runs 18."""
    with embedded_server("reconcile-test-scratch-") as scratch:
        if server_major(pg_server_url) == 18:
            yield pg_server_url, scratch
        else:
            with embedded_server("reconcile-test-target-") as target:
                yield target, scratch


@pytest.fixture
def separate(pg18_servers):
    """A fresh database on the target server, the scratch server, and a role that exists on the target's
    server only; all dropped afterwards."""
    target_server, scratch_server = pg18_servers
    name, role = f"rt_{uuid.uuid4().hex[:10]}", f"reporting_{uuid.uuid4().hex[:6]}"
    _execute(target_server, f'CREATE DATABASE "{name}" TEMPLATE template0')
    _execute(target_server, f'CREATE ROLE "{role}" NOLOGIN')
    try:
        yield _with_database(target_server, name), scratch_server, role
    finally:
        _execute(target_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _execute(target_server, f'DROP ROLE IF EXISTS "{role}"')
        # The scratch server keeps template layers of the declared state (scratch/layers.py), which
        # hold the role's grants: dropped first, as a user dropping the role there would.
        for (layer,) in _execute(scratch_server, "SELECT datname FROM pg_database WHERE datname LIKE 'reconcile\\_layer\\_%'"):
            _execute(scratch_server, f'DROP DATABASE "{layer}" WITH (FORCE)')
        _execute(scratch_server, f'DROP ROLE IF EXISTS "{role}"')


def _role_project(tmp_path, role, scratch_server, extra=""):
    return _project(tmp_path, {
        "schema/items.sql": f"""
            CREATE TABLE public.items (id int PRIMARY KEY, organization_id bigint NOT NULL);
            ALTER TABLE public.items ENABLE ROW LEVEL SECURITY;
            CREATE POLICY reporting_reads ON public.items FOR SELECT TO {role} USING (true);
            GRANT SELECT ON public.items TO {role};
            {extra}
        """}, f"privileges: true\nscratch:\n  mode: server\n  server_url: '{scratch_server}'\n")


def test_a_role_the_declared_files_name_is_made_on_a_scratch_server_of_its_own(capsys, tmp_path, separate, sql):
    target, scratch_server, role = separate
    folder = _role_project(tmp_path, role, scratch_server)
    assert not sql(scratch_server, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))

    _plan_apply_drift(capsys, folder, target)

    assert sql(scratch_server, "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s", (role,)) == \
        [(False, False)]  # made NOLOGIN, like those under roles:
    assert sql(target, "SELECT has_table_privilege(%s, 'public.items', 'SELECT')", (role,)) == [(True,)]
    assert sql(target, "SELECT count(*) FROM pg_policy WHERE polname = 'reporting_reads'") == [(1,)]
    assert sql(scratch_server, "SELECT count(*) FROM pg_database WHERE datname LIKE 'reconcile_scratch_%'") == [(0,)]


@pytest.mark.parametrize("scratch_mode", ["server", "target-server"])
def test_a_role_the_declared_files_name_that_the_target_lacks_is_a_clear_error(
        capsys, tmp_path, separate, scratch_mode):
    target, scratch_server, role = separate
    ghost = f"ghost_{uuid.uuid4().hex[:6]}"
    _execute(scratch_server, f'CREATE ROLE "{ghost}" NOLOGIN')  # there, but not on the target's server
    try:
        folder = _role_project(tmp_path, role, scratch_server, extra=f"GRANT SELECT ON public.items TO {ghost};")
        if scratch_mode == "target-server":
            (folder / "reconcile.yaml").write_text("scratch:\n  mode: target-server\n")
        before = _target_state(target)

        code, out, err = _reconcile(capsys, folder, target, "plan")

        assert code == 1 and out == "", out + err
        assert err == (f"error: role '{ghost}' (named in schema/items.sql:6) does not exist on the target's "
                       f"server; create it there first\n")
        assert _target_state(target) == before
        assert not list((folder / "migrations").glob("*.sql"))
    finally:
        _execute(scratch_server, f'DROP ROLE IF EXISTS "{ghost}"')


# -- what init writes --------------------------------------------------------------------------------

def test_init_no_longer_asks_to_list_what_the_declared_files_create(tmp_path):
    for preset in ("plain", "supabase"):
        made = reconcile.init(tmp_path / preset, preset=preset)
        text = (made.folder / "reconcile.yaml").read_text()
        assert "besides those a declared file creates" in text
        assert "Extensions the declared state needs that no declared file creates" in text
        assert "GRANT ... TO" in text and "without being listed" in text
        assert load_config(made.folder).extensions == ()

