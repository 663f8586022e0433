"""external_schemas (referenced, never owned) and the target's default privileges in scratch databases."""

import json
import textwrap
from pathlib import Path

import pytest

from reconcile_engine.cli import run

AUTH = """
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
CREATE TABLE auth.users (id uuid PRIMARY KEY);
"""

PROFILES = """
CREATE TABLE public.profiles (
    id uuid PRIMARY KEY,
    organization_id bigint NOT NULL,
    display_name text
);
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_profile ON public.profiles USING (id = auth.uid());
"""

TRIVIAL_TEST = "role: app_user\ntests:\n  - name: x\n    sql: SELECT 1\n    expect_rows: [[1]]\n"


def _project(tmp_path, files, config="external_schemas: [auth]\n"):
    folder = tmp_path / "app"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (folder / "migrations").mkdir(exist_ok=True)
    (folder / "reconcile.yaml").write_text(config)
    return folder


def _reconcile(capsys, folder, url, *args):
    code = run([*args, "--project", str(folder), "--database-url", url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _auth_objects(sql, url):
    return sql(url, """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = 'auth' UNION ALL
                       SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                       WHERE n.nspname = 'auth' ORDER BY 1""")


def test_a_policy_calling_auth_uid_plans_rehearses_applies_and_the_next_plan_still_works(
        capsys, tmp_path, target_url, sql):
    sql(target_url, AUTH)
    folder = _project(tmp_path, {"schema/profiles.sql": PROFILES})

    code, out, err = _reconcile(capsys, folder, target_url, "plan")
    assert code == 0, err
    assert "auth" not in "".join(p.read_text() for p in (folder / "migrations").glob("*.sql")).replace("auth.uid()", "")
    assert _reconcile(capsys, folder, target_url, "apply")[0] == 0
    assert sql(target_url, "SELECT polname FROM pg_policy") == [("own_profile",)]

    # The target now holds a policy that calls auth.uid(): its copy for the next rehearsal needs auth too.
    (folder / "schema/profiles.sql").write_text(PROFILES.replace("display_name text", "display_name text,\n    bio text"))
    code, out, err = _reconcile(capsys, folder, target_url, "plan")
    assert code == 0, err
    assert _reconcile(capsys, folder, target_url, "apply")[0] == 0

    # auth is never compared nor changed: a function added there by hand is not drift.
    before = _auth_objects(sql, target_url)
    sql(target_url, "CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$")
    code, out, err = _reconcile(capsys, folder, target_url, "drift", "--format", "json")
    assert code == 0, out + err
    assert _auth_objects(sql, target_url) == sorted(before + [("role",)])


def test_without_external_schemas_the_policy_fails_with_the_file_and_line(capsys, tmp_path, target_url, sql):
    sql(target_url, AUTH)
    folder = _project(tmp_path, {"schema/profiles.sql": PROFILES}, config="")
    code, out, err = _reconcile(capsys, folder, target_url, "plan")
    assert code == 1
    assert 'schema/profiles.sql:8: schema "auth" does not exist' in err
    assert not list((folder / "migrations").glob("*.sql"))


def test_an_external_schema_the_target_lacks_is_refused_naming_it(capsys, tmp_path, target_url, sql):
    folder = _project(tmp_path, {"schema/profiles.sql": PROFILES})
    code, out, err = _reconcile(capsys, folder, target_url, "plan")
    assert code == 1
    assert "external schema 'auth'" in err and "does not exist on the target" in err
    assert "unexpected" not in err
    assert not list((folder / "migrations").glob("*.sql"))


def test_external_schemas_may_not_be_managed_or_the_catalog(capsys, tmp_path, target_url):
    for listed in ("public", "pg_catalog", "reconcile"):
        folder = _project(tmp_path, {"schema/t.sql": "CREATE TABLE t (id int PRIMARY KEY);"},
                          config=f"external_schemas: [{listed}]\n")
        code, out, err = _reconcile(capsys, folder, target_url, "plan")
        assert code == 1 and "external_schemas" in err and listed in err


def test_policy_tests_without_a_target_read_external_definitions_from_files(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    folder = _project(tmp_path, {
        "schema/profiles.sql": PROFILES,
        "external/auth.sql": AUTH.replace("CREATE SCHEMA auth;", ""),
        "policies/tests/own.yaml": """
            role: app_user
            setup: GRANT SELECT ON public.profiles TO app_user;
            fixtures:
              profiles:
                - {id: "00000000-0000-0000-0000-000000000001", organization_id: 1, display_name: me}
                - {id: "00000000-0000-0000-0000-000000000002", organization_id: 1, display_name: other}
            tests:
              - name: sees only its own profile
                settings: {request.jwt.claim.sub: "00000000-0000-0000-0000-000000000001"}
                sql: SELECT display_name FROM public.profiles
                expect_rows: [[me]]
        """,
    })
    code = run(["test", "--project", str(folder)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err


@pytest.mark.parametrize("hostile", [
    "COPY (SELECT 1) TO PROGRAM 'touch /tmp/reconcile-pwned'",
    "DROP DATABASE postgres",
    "CREATE ROLE intruder SUPERUSER",
])
def test_a_hostile_external_file_is_refused_before_anything_runs(capsys, tmp_path, monkeypatch, hostile):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    folder = _project(tmp_path, {
        "schema/profiles.sql": PROFILES,
        "external/auth.sql": AUTH.replace("CREATE SCHEMA auth;", "") + hostile + ";\n",
        "policies/tests/own.yaml": TRIVIAL_TEST,
    })
    code = run(["test", "--project", str(folder)])
    captured = capsys.readouterr()
    assert code == 1
    assert "external/auth.sql:6: " in captured.err and "is not allowed in a declared file" in captured.err
    assert "unexpected" not in captured.err
    assert not Path("/tmp/reconcile-pwned").exists()


def test_a_linked_external_file_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    outside = tmp_path / "outside.sql"
    outside.write_text(AUTH)
    folder = _project(tmp_path, {"schema/profiles.sql": PROFILES,
                                 "policies/tests/own.yaml": TRIVIAL_TEST})
    (folder / "external").mkdir()
    (folder / "external" / "auth.sql").symlink_to(outside)
    code = run(["test", "--project", str(folder)])
    captured = capsys.readouterr()
    assert code == 1 and "external/auth.sql: a link" in captured.err


def test_the_deploy_role_s_default_privileges_reach_the_lint(capsys, tmp_path, target_url, sql):
    """A materialized view over an RLS table is readable by anon on the target through the deploy
    role's default privileges: lint says so, naming both, though no declared file grants anything."""
    sql(target_url, "DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN END $$")
    sql(target_url, "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO anon")
    folder = _project(tmp_path, {
        "schema/orders.sql": """
            CREATE TABLE public.orders (id bigint PRIMARY KEY, organization_id bigint NOT NULL, total numeric);
            ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
            CREATE POLICY by_org ON public.orders USING (organization_id = current_setting('app.org', true)::bigint);
        """,
        "views/totals.sql": """
            CREATE MATERIALIZED VIEW public.order_totals AS
                SELECT organization_id, sum(total) AS total FROM public.orders GROUP BY organization_id;
        """,
    }, config="roles: [anon]\n")
    code, out, err = _reconcile(capsys, folder, target_url, "lint", "--format", "json")
    assert code == 2, out + err
    findings = [f for f in json.loads(out)["declared state"] if f["rule"] == "matview-exposes-rls-table"]
    assert findings and findings[0]["object"] == "public.order_totals" and "anon" in findings[0]["message"]
    # Without the default privileges, nothing to report.
    sql(target_url, "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM anon")
    code, out, err = _reconcile(capsys, folder, target_url, "lint", "--format", "json")
    assert not [f for f in json.loads(out)["declared state"] if f["rule"] == "matview-exposes-rls-table"], out


def test_a_grant_made_on_the_target_reaches_drift_s_lint_through_the_cache(capsys, tmp_path, target_url, sql):
    """Grants are not managed, so a grant to anon on the target is no drift; but the lint sees it, and
    a desired state cached before it is not reused without it."""
    sql(target_url, "DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN END $$")
    folder = _project(tmp_path, {
        "schema/orders.sql": """
            CREATE TABLE public.orders (id bigint PRIMARY KEY, organization_id bigint NOT NULL);
            ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
        """,
        "views/counts.sql": """
            CREATE MATERIALIZED VIEW public.order_counts AS
                SELECT organization_id, count(*) FROM public.orders GROUP BY organization_id;
        """,
    }, config="roles: [anon]\n")
    assert _reconcile(capsys, folder, target_url, "plan")[0] == 0
    assert _reconcile(capsys, folder, target_url, "apply")[0] == 0
    code, out, err = _reconcile(capsys, folder, target_url, "drift", "--format", "json")
    assert code == 0 and not [w for w in json.loads(out)["lint_warnings"] if "order_counts" in w]

    sql(target_url, "GRANT SELECT ON public.order_counts TO anon")
    code, out, err = _reconcile(capsys, folder, target_url, "drift", "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["declared_state"] == "built", out
    [warning] = [w for w in report["lint_warnings"] if "matview-exposes-rls-table" in w]
    assert "public.order_counts" in warning and "anon" in warning
