"""The command line renders the API's results: text, JSON and markdown, one document on stdout."""

import json


def test_markdown_plan_and_drift_for_a_pull_request_comment(cli):
    code, out, _ = cli("plan", "--dry-run", "--format", "markdown")
    assert code == 0
    assert out.startswith("### reconcile plan for ") and "rehearsed on a copy of the target: converged" in out
    assert "```sql\n-- reconcile plan" in out and "Not written (dry run)." in out

    code, out, _ = cli("drift", "--format", "markdown")
    assert code == 2
    assert out.startswith("### Drift: ") and "| table | public.organizations | schema |" in out
    assert "<details><summary>SQL that would bring" in out and "```sql\n" in out


def test_with_json_the_progress_of_apply_goes_to_stderr(cli):
    assert cli("plan", "--name", "first")[0] == 0

    code, out, err = cli("apply", "--format", "json")

    assert code == 0
    report = json.loads(out)  # stdout is one JSON document
    assert [a["name"] for a in report["applied"]] == [report["applied"][0]["name"]]
    assert report["applied"][0]["name"].endswith("_first.sql") and report["already_applied"] == 0
    assert "applying " in err and report["applied"][0]["name"] in err
    code, out, _ = cli("status", "--format", "json")
    assert code == 0 and json.loads(out)["pending"] == []


def test_an_unknown_format_is_a_usage_error_not_drift(cli):
    code, out, err = cli("drift", "--format", "yaml")
    assert code == 1 and out == ""
    assert "invalid choice: 'yaml'" in err


def test_status_names_the_database_role_apart_from_the_os_user(cli, target_url, sql):
    """The history records who ran reconcile (OS user@host) and as which database role."""
    role = sql(target_url, "SELECT current_user")[0][0]
    assert cli("plan", "--name", "first")[0] == 0 and cli("apply")[0] == 0

    code, out, _ = cli("status", "--format", "json")
    [entry] = json.loads(out)["applied"]
    assert code == 0 and entry["applied_as"] == role and "@" in entry["applied_by"]
    code, out, _ = cli("status")
    assert f"as role {role}" in out


def test_a_history_from_before_the_role_was_recorded_still_reads(cli, target_url, sql):
    """drift and status only read: a history table without the column is read, not changed."""
    assert cli("plan", "--name", "first")[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "ALTER TABLE reconcile.history DROP COLUMN applied_as")

    code, out, _ = cli("status", "--format", "json")
    assert code == 0 and json.loads(out)["applied"][0]["applied_as"] is None
    assert cli("drift")[0] == 0
    columns = sql(target_url, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'reconcile.history'::regclass "
                              "AND attname = 'applied_as'")
    assert columns[0][0] == 0
