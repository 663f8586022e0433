"""Security drift comes first: a difference that weakens tenant isolation (row level security off or
no longer forced, any policy difference, a grant over a table with RLS) is reported before everything
else, marked SECURITY in text and "severity": "security" in JSON, so a cron job can page on it alone."""

import json
import uuid

import pytest

from reconcile_engine.inspection.security_drift import SCHEMA, SECURITY, classify
from reconcile_engine.inspection.snapshot import CatalogSnapshot

AS_OF = "2026-06-01"


def drift(cli):
    code, out, err = cli("drift", "--as-of", AS_OF, "--format", "json")
    assert code in (0, 2), err
    return code, json.loads(out)


@pytest.fixture
def applied(cli):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0


def test_rls_disabled_by_hand_is_reported_first(cli, applied, sql, target_url):
    sql(target_url, "ALTER TABLE organizations ADD COLUMN note text")  # unrelated, sorts before
    sql(target_url, "ALTER TABLE learner_analytics DISABLE ROW LEVEL SECURITY")

    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 2
    first = out.splitlines()[0]
    assert first.startswith("SECURITY: ") and "row level security disabled on public.learner_analytics" in first
    assert out.index("column public.organizations.note: only in target") > out.index("Drift: ")

    code, report = drift(cli)
    assert code == 2 and report["security_drift"] and not report["in_sync"]
    first, *rest = report["differences"]
    assert first == {"description": first["description"], "kind": "table", "key": "public.learner_analytics",
                     "severity": "security"}
    assert [d for d in rest if d["key"] == "public.organizations.note"] == [
        {"description": "column public.organizations.note: only in target", "kind": "column",
         "key": "public.organizations.note", "severity": "schema"}]
    assert all(d["severity"] == "schema" for d in rest)


def test_rls_no_longer_forced_is_security_drift(cli, applied, sql, target_url):
    sql(target_url, "ALTER TABLE users NO FORCE ROW LEVEL SECURITY")
    code, report = drift(cli)
    assert code == 2 and report["differences"][0]["severity"] == "security"
    assert report["differences"][0]["description"].startswith("row level security no longer forced on public.users")


def test_a_dropped_policy_is_security_drift(cli, applied, sql, target_url):
    sql(target_url, "DROP POLICY org_isolation ON users; ALTER TABLE organizations ADD COLUMN note text")

    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 2 and out.splitlines()[0].startswith("SECURITY: policy dropped on public.users")
    code, report = drift(cli)
    assert report["security_drift"]
    assert [(d["kind"], d["key"], d["severity"]) for d in report["differences"]] == [
        ("policy", "public.users.org_isolation", "security"),
        ("column", "public.organizations.note", "schema"),
    ]


def test_security_invoker_turned_off_on_a_view_over_rls_is_security_drift(cli, project, applied, sql, target_url):
    (project / "views" / "020_my_users.sql").write_text(
        "CREATE VIEW my_users WITH (security_invoker = true) AS SELECT id, email FROM users;\n")
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "ALTER VIEW my_users RESET (security_invoker)")

    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 2
    assert out.splitlines()[0].startswith("SECURITY: security_invoker turned off on public.my_users, which reads public.users")


def test_markdown_puts_security_right_under_the_heading(cli, applied, sql, target_url):
    sql(target_url, "ALTER TABLE learner_analytics DISABLE ROW LEVEL SECURITY")
    code, out, _ = cli("drift", "--as-of", AS_OF, "--format", "markdown")
    lines = out.splitlines()
    assert code == 2 and lines[0].startswith("### Drift: ")
    under_the_heading = next(line for line in lines[1:] if line.strip())  # a blank line ends the heading
    rendered = under_the_heading.replace("\\_", "_")  # names are escaped for markdown
    assert rendered.startswith("- **SECURITY**: row level security disabled on public.learner_analytics")


def test_only_schema_drift_is_not_security_drift(cli, applied, sql, target_url):
    sql(target_url, "CREATE INDEX users_created_at_idx ON users (created_at)")
    code, report = drift(cli)
    assert code == 2 and not report["security_drift"]
    assert [d["severity"] for d in report["differences"]] == ["schema"]
    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert "SECURITY" not in out


@pytest.fixture
def reader(pg_server_url, sql, target_url):
    """A role of the server's (roles are global), dropped after the test, its grants in the target first."""
    name = f"rt_reader_{uuid.uuid4().hex[:8]}"
    sql(pg_server_url, f'CREATE ROLE "{name}"')
    yield name
    sql(target_url, f'DROP OWNED BY "{name}"')
    sql(pg_server_url, f'DROP ROLE "{name}"')


def test_with_privileges_managed_a_grant_over_rls_is_security_drift(cli, project, sql, target_url, reader):
    config = project / "reconcile.yaml"
    config.write_text(config.read_text() + "\nprivileges: true\n")
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, f'GRANT SELECT ON mv_comparison_aggregates TO "{reader}"')  # a matview over learner_analytics
    sql(target_url, f'GRANT SELECT ON users TO "{reader}"')
    sql(target_url, f'CREATE TABLE notes (id int); GRANT SELECT ON notes TO "{reader}"')

    code, report = drift(cli)
    assert code == 2 and report["security_drift"]
    grants = {d["key"]: d for d in report["differences"] if d["kind"] == "grant"}
    assert grants[f'TABLE public.mv_comparison_aggregates TO {reader}']["severity"] == "security"
    assert grants[f'TABLE public.users TO {reader}']["severity"] == "security"
    assert grants[f'TABLE public.notes TO {reader}']["severity"] == "schema"  # no RLS under it
    assert [d["severity"] for d in report["differences"]][:2] == ["security", "security"]
    assert grants[f'TABLE public.mv_comparison_aggregates TO {reader}']["description"].startswith(
        "grant changed on public.mv_comparison_aggregates, over public.learner_analytics, a table with row "
        "level security: grant TABLE public.mv_comparison_aggregates TO")


# --- the classification alone, on snapshots made by hand --------------------------------------------

def snapshot(objects, owners, facts):
    return CatalogSnapshot(objects, facts, owners)


def test_classification_from_snapshots_alone():
    rls = {"row security": {"public.t": ""}, "forced rls": {"public.t": ""},
           "reads": {"public.v": ["public.w"], "public.w": ["public.t"]}, "relkind": {"public.s": "S"},
           "partition parent": {"public.t_2024": "public.t"}}
    declared = snapshot(
        {("table", "public.t"): "kind r | rls", ("policy", "public.t.p"): "permissive",
         ("grant", "TABLE public.v TO r"): "SELECT", ("grant", "SEQUENCE public.s TO r"): "USAGE",
         ("grant", "TABLE public.t_2024 TO r"): "SELECT"},
        {("table", "public.t"): ("public.t",), ("policy", "public.t.p"): ("public.t",),
         ("grant", "TABLE public.v TO r"): ("public.v",), ("grant", "SEQUENCE public.s TO r"): ("public.s",),
         ("grant", "TABLE public.t_2024 TO r"): ("public.t_2024",)},
        rls)
    target = snapshot(
        {("table", "public.t"): "kind r | rls not forced", ("column", "public.t.c"): "int",
         ("policy", "public.t.q"): "permissive using (true)"},
        {("table", "public.t"): ("public.t",), ("column", "public.t.c"): ("public.t",),
         ("policy", "public.t.q"): ("public.t",)},
        {**rls, "forced rls": {}})
    classified = classify(target.differences(declared), target, declared)

    assert [(d.kind, d.key, d.severity) for d in classified] == [
        ("grant", "TABLE public.t_2024 TO r", SECURITY),  # a partition of t
        ("grant", "TABLE public.v TO r", SECURITY),  # a view over a view over t
        ("policy", "public.t.p", SECURITY), ("policy", "public.t.q", SECURITY), ("table", "public.t", SECURITY),
        ("column", "public.t.c", SCHEMA), ("grant", "SEQUENCE public.s TO r", SCHEMA),  # it reads no rows
    ]
    assert classified[1].description.startswith("grant changed on public.v, over public.t, a table with")
    assert classified[2].description.startswith("policy dropped on public.t (declared, missing on the target)")
    assert classified[3].description.startswith("policy added on public.t on the target (not declared)")
    assert classified[4].description.startswith("row level security no longer forced on public.t: table public.t")
