"""Adopting a Supabase database that Prisma built (tests/supabase_like.py), all as the deploy role:
init --preset supabase, pull, then plan and drift find nothing; then the day-to-day of such a team."""

import datetime as dt
import json

import pytest

from reconcile_engine.cli import run

import supabase_like
from conftest import _execute

AS_OF = dt.date(2026, 6, 1)


@pytest.fixture
def supabase(pg_server_url, new_database):
    """(superuser URL, deploy role URL) of a fresh Supabase-like database with rows."""
    url = new_database()
    has_pgcrypto = bool(_execute(url, "SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto'"))
    with supabase_like.deploy_role(pg_server_url):
        deploy_url = supabase_like.build(url, with_extension=has_pgcrypto, as_of=AS_OF)
        try:
            yield url, deploy_url
        finally:
            supabase_like.drop_owned(url)


@pytest.fixture
def adopted(tmp_path, capsys, supabase):
    """init --preset supabase + pull; returns a function running reconcile as the deploy role."""
    folder = tmp_path / "app"
    admin_url, deploy_url = supabase

    def reconcile(*args, as_of=AS_OF):
        dated = ["--as-of", as_of.isoformat()] if args[0] in ("plan", "drift", "maintain", "pull") else []
        code = run([*args, *dated, "--project", str(folder), "--database-url", deploy_url])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert run(["init", "--project", str(folder), "--preset", "supabase"]) == 0
    capsys.readouterr()
    code, out, err = reconcile("pull")
    assert code == 0, out + err
    return folder, reconcile, admin_url, deploy_url


def _file_declaring(folder, text):
    [path] = [p for p in (folder).rglob("*.sql") if text in p.read_text()]
    return path


def test_init_and_pull_give_files_that_plan_to_nothing_and_drift_exits_0(adopted):
    folder, reconcile, admin_url, deploy_url = adopted
    pulled = "".join(p.read_text() for p in folder.rglob("*.sql"))
    assert '"organizationId"' in pulled and '"Role"' in pulled and "auth.uid()" in pulled
    assert "_prisma_migrations" not in pulled  # ignored by the preset
    assert (folder / "partitions" / "Event.yaml").exists()

    code, out, err = reconcile("plan", "--detailed-exitcode")
    assert code == 0, out + err
    assert not list((folder / "migrations").glob("*.sql"))
    code, out, err = reconcile("drift")
    assert code == 0, out + err


def test_security_drift_is_reported_first(adopted):
    folder, reconcile, admin_url, deploy_url = adopted
    _execute(deploy_url, 'ALTER TABLE "User" ADD COLUMN "nickname" text')
    _execute(deploy_url, 'ALTER TABLE "User" DISABLE ROW LEVEL SECURITY')

    code, out, err = reconcile("drift")
    assert code == 2
    first = next(line for line in out.splitlines() if "User" in line)
    assert first.startswith("SECURITY") and '"User"' in first or "User" in first
    code, out, err = reconcile("drift", "--format", "json")
    report = json.loads(out)
    assert report["differences"][0]["severity"] == "security"
    assert "User" in report["differences"][0]["key"]
    assert any(d["severity"] == "schema" and "nickname" in d["description"] for d in report["differences"])


def test_a_policy_using_auth_uid_plans_rehearses_and_applies_and_prisma_s_table_is_left_alone(adopted):
    folder, reconcile, admin_url, deploy_url = adopted
    policies = _file_declaring(folder, 'CREATE POLICY self ')
    policies.write_text(policies.read_text() + '\nCREATE POLICY "admins read their organization" ON public."User"\n'
                        '    FOR SELECT TO authenticated USING (EXISTS (SELECT 1 FROM auth.users a WHERE a.id = auth.uid()));\n')

    code, out, err = reconcile("plan", "--name", "admins")
    assert code == 0, out + err
    [plan] = list((folder / "migrations").glob("*_admins.sql"))
    statements = [line for line in plan.read_text().splitlines() if not line.startswith("--")]
    assert not [line for line in statements if "_prisma_migrations" in line]
    code, out, err = reconcile("apply")
    assert code == 0, out + err
    assert _execute(admin_url, "SELECT polname FROM pg_policy WHERE polname = 'admins read their organization'")
    assert _execute(admin_url, 'SELECT migration_name FROM "_prisma_migrations"') == [("20240101000000_init",)]
    assert reconcile("drift")[0] == 0


def test_a_matview_readable_by_anon_through_default_privileges_fails_lint_naming_both(adopted):
    folder, reconcile, admin_url, deploy_url = adopted
    code, out, err = reconcile("lint", "--format", "json")
    assert code == 2, out + err
    [finding] = [f for f in json.loads(out)["declared state"] if f["rule"] == "matview-exposes-rls-table"
                 and "anon" in f["message"]]
    assert finding["object"] == "public.OrganizationUserCount"
    assert "User" in finding["message"]


def test_a_dashboard_index_once_declared_is_reconciled_and_maintain_runs(adopted):
    folder, reconcile, admin_url, deploy_url = adopted
    _execute(deploy_url, 'CREATE INDEX "User_createdAt_idx" ON "User"("createdAt")')
    assert reconcile("drift")[0] == 2

    table = _file_declaring(folder, 'CREATE TABLE public."User"')
    table.write_text(table.read_text() + '\nCREATE INDEX "User_createdAt_idx" ON public."User" USING btree ("createdAt");\n')
    code, out, err = reconcile("drift", "--format", "json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["in_sync"] and report["changed_outside_reconcile"] is not None

    # A year on, maintain makes the next partition ("Event_2024" expiring is left to a reviewed plan).
    code, out, err = reconcile("maintain", "--format", "json", as_of=dt.date(AS_OF.year + 1, 6, 1))
    assert code == 0, out + err
    assert json.loads(out)["created"] == [f"Event_{AS_OF.year + 2}"]
    assert _execute(admin_url, f"SELECT to_regclass('public.\"Event_{AS_OF.year + 2}\"') IS NOT NULL") == [(True,)]


def test_a_deploy_role_that_may_not_make_the_history_table_is_told_the_grant(adopted):
    folder, reconcile, admin_url, deploy_url = adopted
    database = _execute(admin_url, "SELECT current_database()")[0][0]
    _execute(admin_url, f'REVOKE CREATE ON DATABASE "{database}" FROM {supabase_like.DEPLOY_ROLE}')
    table = _file_declaring(folder, 'CREATE TABLE public."Organization"')
    declared = table.read_text()
    assert '"createdAt" timestamp(3) without time zone' in declared
    table.write_text(declared.replace('"createdAt" timestamp(3) without time zone', '"plan" text,\n    "createdAt" timestamp(3) without time zone'))
    assert reconcile("plan", "--name", "add_plan")[0] == 0
    assert len(list((folder / "migrations").glob("*_add_plan.sql"))) == 1

    code, out, err = reconcile("apply")
    assert code == 1
    assert "cannot create the history table reconcile.history" in err and "GRANT CREATE ON DATABASE" in err
    assert not _execute(admin_url, "SELECT 1 FROM information_schema.columns WHERE column_name = 'plan'")
    code, out, err = reconcile("status", "--format", "json")
    assert [name for name in json.loads(out)["pending"] if name.endswith("_add_plan.sql")], out
