"""End-to-end through the command line: declared files -> plan -> apply -> drift, on a real server."""

import json
import os
import shutil
import re
import subprocess
import sys
import threading
from pathlib import Path

import psycopg2
import pytest
from conftest import _execute as sql_rows

from reconcile_engine.cli import run

AS_OF = "2026-06-01"
REPO = Path(__file__).resolve().parent.parent


def scalar(url, query):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0]
    finally:
        conn.close()


def table_names(url):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")
            return cur.fetchone()[0]
    finally:
        conn.close()


def scratch_databases(url):
    return scalar(url, "SELECT count(*) FROM pg_database WHERE datname LIKE 'reconcile_scratch_%'")


def plan_files(project):
    return sorted((project / "migrations").glob("*.sql"))


def test_empty_database_plan_apply_drift_clean(cli, project, target_url):
    code, out, err = cli("plan", "--name", "init", "--as-of", AS_OF)
    assert code == 0, err
    assert "rehearsed on a copy" in out and "converged" in out
    [plan] = plan_files(project)
    assert plan.name.endswith("_init.sql")
    text = plan.read_text()
    assert "-- fingerprint-before: sha256:" in text and "-- as-of: 2026-06-01" in text

    code, out, err = cli("apply")
    assert code == 0, err
    assert f"applied {plan.name}" in out

    code, out, err = cli("drift", "--as-of", AS_OF)
    assert (code, err) == (0, "")
    assert "In sync" in out

    # What the schema must be, checked in the catalogs directly, not through the tool.
    assert scalar(target_url, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'aggregated_analytics'::regclass") == 8
    assert scalar(target_url, "SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class WHERE relname IN "
                              "('organizations', 'users', 'learner_analytics', 'aggregated_analytics')")
    assert scalar(target_url, "SELECT count(*) FROM pg_policy WHERE polname = 'org_isolation'") == 4
    assert scalar(target_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'aggregated_analytics_pkey'::regclass")
    assert scalar(target_url, "SELECT count(*) FROM pg_indexes WHERE tablename = 'mv_comparison_aggregates'") == 1
    assert scalar(target_url, "SELECT count(*) FROM reconcile.history") == 1
    assert scratch_databases(target_url) == 0

    code, out, _ = cli("status")
    assert code == 0 and plan.name in out and "Pending (0)" in out

    code, out, _ = cli("plan", "--as-of", AS_OF, "--detailed-exitcode")
    assert (code, out.strip()) == (0, "No changes: the target matches the declared state.")
    code, out, _ = cli("apply")
    assert code == 0 and "Nothing to apply" in out


def test_changed_declared_file_gives_a_plan_with_just_that_change(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0
    assert cli("apply")[0] == 0
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace(
        "created_at       timestamptz NOT NULL DEFAULT now()\n);",
        "created_at       timestamptz NOT NULL DEFAULT now(),\n    display_name     text\n);",
    ))

    code, out, err = cli("plan", "--name", "display name", "--as-of", AS_OF, "--detailed-exitcode")

    assert code == 2, err
    new_plan = plan_files(project)[-1]
    assert new_plan.name.endswith("_display_name.sql")
    statements = [line for line in new_plan.read_text().split("-- ---- statements ----")[1].splitlines()
                  if line and not line.startswith("--")]
    assert statements == ['alter table "public"."users" add column "display_name" text;']
    assert cli("apply")[0] == 0
    assert scalar(target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'display_name'") == 1
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_materialized_view_redefinition_keeps_its_index(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    view = project / "views" / "010_mv_comparison_aggregates.sql"
    view.write_text(view.read_text().replace("count(*)", "max(created_at) AS last_seen,\n    count(*)"))

    code, out, err = cli("plan", "--as-of", AS_OF)

    assert code == 0, err
    assert "matviews.indexes" in out
    assert cli("apply")[0] == 0
    assert scalar(target_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'mv_comparison_aggregates_org_role_idx'") == 1
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_out_of_band_change_is_drift(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    # migra itself never looks at FORCE: only the independent comparison can see this one.
    sql(target_url, "ALTER TABLE users NO FORCE ROW LEVEL SECURITY")
    sql(target_url, "CREATE INDEX users_created_at_idx ON users (created_at)")

    code, out, err = cli("drift", "--as-of", AS_OF)

    assert code == 2, err
    assert "Changed outside reconcile since the last apply" in out
    assert "index public.users_created_at_idx: only in target" in out
    assert "table public.users: differs" in out
    assert "force row level security" in out
    code, out, _ = cli("drift", "--as-of", AS_OF, "--format", "json")
    report = json.loads(out)
    assert code == 2 and report["changed_outside_reconcile"] and not report["in_sync"]
    assert any("drop index" in s for s in report["fix_sql"])


def test_pending_plans_are_reported_apart_and_block_a_new_plan(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0

    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 2
    assert "Reviewed plans not yet applied (they account for every difference)" in out
    assert "Changed outside reconcile" not in out

    code, out, err = cli("plan", "--as-of", AS_OF)
    assert code == 1
    assert "not yet applied" in err and "apply them first" in err
    assert len(plan_files(project)) == 1


def test_stale_plan_is_refused_and_nothing_applied(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0
    sql(target_url, "CREATE TABLE sneaky (id int)")

    code, out, err = cli("apply")

    assert code == 1
    assert "the database changed since this plan was made" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert table_names(target_url) == "sneaky"
    assert scalar(target_url, "SELECT count(*) FROM reconcile.history") == 0


def test_failing_plan_rolls_back_completely(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    org = project / "schema" / "010_organizations.sql"
    org.write_text(org.read_text().replace("    name        text NOT NULL,\n",
                                           "    name        text NOT NULL,\n    tier        text NOT NULL,\n"))
    assert cli("plan", "--as-of", AS_OF)[0] == 0
    plan = plan_files(project)[-1]
    # A row written after the plan was made (its pre-flight checks found none) makes it fail at apply.
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")

    code, out, err = cli("apply")

    assert code == 1
    assert plan.name in err and 'column "tier" of relation "organizations" contains null values' in err
    assert "rolled back, nothing was applied" in err
    assert scalar(target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'tier'") == 0
    assert scalar(target_url, "SELECT count(*) FROM reconcile.history") == 1


def test_destructive_statements_need_approval(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
    org = project / "schema" / "010_organizations.sql"
    org.write_text(org.read_text().replace("    name        text NOT NULL,\n", ""))

    code, out, err = cli("plan", "--as-of", AS_OF)
    assert code == 0, err
    assert "[DESTRUCTIVE]" in out and "drops column organizations.name" in out.replace("public.", "")

    code, _, err = cli("apply")
    assert code == 1 and "destructive" in err and "destructive-approved: yes" in err
    assert scalar(target_url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'organizations' "
                              "AND column_name = 'name'") == 1

    plan = plan_files(project)[-1]
    plan.write_text(plan.read_text().replace("-- destructive-approved: no", "-- destructive-approved: yes"))
    code, _, err = cli("apply")
    assert code == 0, err
    assert scalar(target_url, "SELECT count(*) FROM organizations") == 1
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_drop_default_is_not_destructive(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    org = project / "schema" / "010_organizations.sql"
    org.write_text(org.read_text().replace("created_at  timestamptz NOT NULL DEFAULT now()", "created_at  timestamptz NOT NULL"))

    code, out, err = cli("plan", "--as-of", AS_OF, "--dry-run")

    assert code == 0, err
    assert "drop default of created_at" in out
    assert "-- destructive: none" in out
    assert plan_files(project)[-1].read_text().count("drop default") == 0  # --dry-run wrote nothing


def test_concurrent_applies_apply_once(project, target_url, capsys):
    assert run(["plan", "--as-of", AS_OF, "--project", str(project), "--database-url", target_url]) == 0
    command = [sys.executable, str(REPO / "reconcile.py"), "apply", "--project", str(project), "--database-url", target_url]
    results = []

    def apply_once():
        results.append(subprocess.run(command, capture_output=True, text=True, timeout=120))

    threads = [threading.Thread(target=apply_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    outputs = sorted(r.stdout for r in results)
    assert sum("applied " in o and "Nothing to apply" not in o for o in outputs) == 1
    assert sum("Nothing to apply" in o for o in outputs) == 1
    assert scalar(target_url, "SELECT count(*) FROM reconcile.history") == 1


def test_apply_gives_up_when_another_apply_holds_the_lock(cli, project, target_url):
    from reconcile_engine.deploy.advisory_lock import ADVISORY_LOCK_KEY

    assert cli("plan", "--as-of", AS_OF)[0] == 0
    (project / "reconcile.yaml").write_text("timeouts:\n  apply_lock_wait: 1s\n")
    holder = psycopg2.connect(target_url)
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        code, _, err = cli("apply")
    finally:
        holder.close()

    assert code == 1
    assert "another reconcile apply holds the lock" in err and "apply_lock_wait" in err
    assert table_names(target_url) is None


# -- bad input: one clear line, exit 1, nothing changed -------------------------------------------


def _one_clean_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("content, expected", [
    ("managed_schemas: [public\n", r"reconcile.yaml:\d+: malformed YAML"),
    ("scratch_mode: embedded\n", r"reconcile.yaml: unknown key 'scratch_mode'"),
    ("managed_schemas: public\n", r"reconcile.yaml: managed_schemas: expected a list of names"),
    ("timeouts:\n  lock_timeout: soon\n", r"timeouts.lock_timeout: expected a duration"),
    ("scratch:\n  mode: cloud\n", r"scratch.mode: expected one of auto, target-server, server, embedded"),
])
def test_bad_config_is_one_line(cli, project, target_url, content, expected):
    (project / "reconcile.yaml").write_text(content)

    code, out, err = cli("plan", "--as-of", AS_OF)

    assert code == 1
    assert re.search(expected, _one_clean_line(err))
    assert table_names(target_url) is None and not plan_files(project)


def test_sql_error_in_a_declared_file_names_file_and_line(cli, project, target_url):
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("email            text NOT NULL UNIQUE,", "email            txet NOT NULL UNIQUE,"))

    code, out, err = cli("plan", "--as-of", AS_OF)

    assert code == 1
    line = _one_clean_line(err)
    assert line == 'error: schema/020_users.sql:3: type "txet" does not exist'
    assert table_names(target_url) is None and not plan_files(project)
    assert scratch_databases(target_url) == 0


def test_syntax_error_in_a_declared_file_names_file_and_line(cli, project, target_url):
    (project / "policies" / "users.sql").write_text("ALTER TABLE users ENABLE ROW LEVEL SECURITY;\n\nCREATE POLICY p ON users USING (;\n")

    code, out, err = cli("plan", "--as-of", AS_OF)

    assert code == 1
    assert _one_clean_line(err).startswith("error: policies/users.sql:3: syntax error")
    assert scratch_databases(target_url) == 0


def test_missing_schema_folder(cli, project, target_url):
    import shutil

    shutil.rmtree(project / "schema")

    code, out, err = cli("plan")

    assert code == 1
    assert "schema: folder not found" in _one_clean_line(err)


def test_unreachable_database_never_prints_the_password(cli, project):
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere"

    code, out, err = cli("drift", url=url)

    assert code == 1
    line = _one_clean_line(err)
    assert "cannot connect to someone@127.0.0.1:1/nowhere" in line
    assert "s3cret-pw" not in err + out


def test_bad_partition_spec(cli, project, target_url):
    (project / "partitions" / "aggregated_analytics.yaml").write_text("table: aggregated_analytics\ncolumn: period_start\ninterval: hourly\n")

    code, out, err = cli("plan")

    assert code == 1
    assert "partitions/aggregated_analytics.yaml: interval: expected one of yearly, quarterly, monthly, got 'hourly'" in _one_clean_line(err)


def test_usage_error_is_exit_1_not_2(cli):
    code, out, err = cli("plan", "--no-such-flag")

    assert code == 1
    assert "unrecognized arguments: --no-such-flag" in err


def test_entry_point_exit_codes_and_no_traceback(project, target_url):
    base = [sys.executable, str(REPO / "reconcile.py")]
    changes = subprocess.run(base + ["drift", "--project", str(project), "--database-url", target_url, "--as-of", AS_OF],
                             capture_output=True, text=True, timeout=120)
    assert changes.returncode == 2 and "Drift:" in changes.stdout
    bad = subprocess.run(base + ["apply", "--project", str(project / "nope")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and bad.stderr.startswith("error: ")


def test_plan_as_json(cli, project):
    code, out, err = cli("plan", "--as-of", AS_OF, "--format", "json", "--dry-run")

    assert code == 0, err
    payload = json.loads(out)
    assert payload["rehearsed"] is True and payload["file"] is None
    assert payload["fingerprint_before"].startswith("sha256:") and payload["as_of"] == AS_OF
    assert any(s["summary"] == "create table public.users" for s in payload["statements"])
    assert "rls.force" in payload["corrections"]
    assert not plan_files(project)


def test_scratch_on_a_configured_server(cli, project, target_url, pg_server_url):
    (project / "reconcile.yaml").write_text(f"scratch:\n  mode: server\n  server_url: {pg_server_url}\n")

    code, out, err = cli("plan", "--as-of", AS_OF)

    assert code == 0, err
    assert cli("apply")[0] == 0 and cli("drift", "--as-of", AS_OF)[0] == 0
    assert scratch_databases(pg_server_url) == 0


def test_missing_role_on_the_target_server_is_a_clear_error(cli, project, target_url):
    (project / "reconcile.yaml").write_text("roles: [no_such_role_here]\n")

    code, out, err = cli("plan", "--as-of", AS_OF)

    assert code == 1
    assert "role 'no_such_role_here'" in _one_clean_line(err) and "create it there first" in err
    assert scratch_databases(target_url) == 0


def _sweep_after(pid, url):
    for (name,) in sql_rows(url, f"SELECT datname FROM pg_database WHERE datname LIKE 'reconcile\\_scratch\\_%\\_{pid}\\_%'"):
        sql_rows(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for (name,) in sql_rows(url, f"SELECT rolname FROM pg_roles WHERE rolname LIKE 'reconcile\\_build\\_{pid}\\_%'"):
        sql_rows(url, f'DROP ROLE IF EXISTS "{name}"')


def test_interrupt_drops_the_scratch_database(project, target_url):
    import signal
    import time

    # A partition bound is evaluated when its partition is created: a slow one keeps the build busy.
    (project / "views" / "000_slow.sql").write_text(
        "CREATE TABLE slow (d date) PARTITION BY RANGE (d);\n"
        "CREATE TABLE slow_2020 PARTITION OF slow FOR VALUES FROM (('2020-01-01' || pg_sleep(60)::text)::date) "
        "TO ('2021-01-01');\n")
    process = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", str(REPO / "reconcile.py"), "plan", "--project", str(project),
         "--database-url", target_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal: a test run started in the background (CI's `&`) ignores SIGINT, and a
        # child would inherit that, and with it Python would never raise KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        # Two: the desired state, and the target's copy for the rehearsal, made beside it.
        while scratch_databases(target_url) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scratch_databases(target_url) == 2
        time.sleep(0.5)  # into the slow statement
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Where it hangs: every thread's stack (faulthandler, on SIGABRT), and what the server runs.
            activity = scalar(target_url, "SELECT string_agg(datname || ': ' || state || ': ' || left(query, 80), E'\\n') "
                                          "FROM pg_stat_activity WHERE datname LIKE 'reconcile_scratch_%'")
            process.send_signal(signal.SIGABRT)
            _, err = process.communicate(timeout=30)
            pytest.fail(f"an interrupted plan did not stop within 60 s; server: {activity}; stacks: {err[-6000:]}")
    finally:
        process.kill()
        if process.wait() != 1:  # killed: what it left must not fail the tests that count scratch databases
            _sweep_after(process.pid, target_url)

    assert process.returncode == 1
    assert "interrupted" in err and "Traceback" not in err
    assert scratch_databases(target_url) == 0
    assert scalar(target_url, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'reconcile\\_build\\_%'") == 0
    assert not plan_files(project)


def test_embedded_default_target(project, tmp_path):
    """No URL anywhere: the whole loop runs on an embedded server, as on a fresh machine."""
    from reconcile_engine.config import load_config
    from reconcile_engine.servers import embedded_data_dir

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    base = [sys.executable, str(REPO / "reconcile.py")]
    data_dir = embedded_data_dir(load_config(project))

    def reconcile(*args):
        return subprocess.run(base + [*args, "--project", str(project)], capture_output=True, text=True,
                              timeout=300, env=env)

    try:
        shown = reconcile("plan", "--dry-run", "--as-of", AS_OF)
        assert shown.returncode == 0, shown.stderr
        assert "create table public.learner_analytics" in shown.stdout and not plan_files(project)
        assert reconcile("plan", "--as-of", AS_OF).returncode == 0
        applied = reconcile("apply")
        assert applied.returncode == 0 and "applied" in applied.stdout, applied.stderr
        drift = reconcile("drift", "--as-of", AS_OF)
        assert drift.returncode == 0 and "In sync: embedded database" in drift.stdout
    finally:
        shutil.rmtree(data_dir.parent if data_dir.parent.name != ".reconcile" else data_dir, ignore_errors=True)


def test_plan_is_refused_when_rehearsal_does_not_converge(cli, tmp_path, target_url):
    """Table storage options are seen by the independent comparison but written by nothing yet:
    the plan must be refused with what remains, and no file written."""
    folder = tmp_path / "storage"
    (folder / "schema").mkdir(parents=True)
    (folder / "schema" / "t.sql").write_text("CREATE TABLE t (id int PRIMARY KEY) WITH (fillfactor = 70);\n")

    code, out, err = cli("plan", folder=folder)

    assert code == 1
    assert "still differs: table public.t: differs" in err and "fillfactor=70" in err
    assert err.strip().splitlines()[-1].startswith("error: the plan does not reach the declared state")
    assert not (folder / "migrations").exists()
    assert table_names(target_url) is None


@pytest.mark.parametrize("spec, expected", [
    ("table: no_such_table\ncolumn: period_start\n",
     "partitions/aggregated_analytics.yaml: table: public.no_such_table is not declared in schema/"),
    ("table: users\ncolumn: created_at\n",
     "partitions/aggregated_analytics.yaml: table: public.users is not partitioned "
     "(declare it with PARTITION BY RANGE (created_at))"),
    ("table: aggregated_analytics\ncolumn: created_at\n",
     "partitions/aggregated_analytics.yaml: column: created_at is not the range partition key of "
     "public.aggregated_analytics, which is partitioned by RANGE (period_start)"),
    ("table: aggregated_analytics\ncolumn: period_start\npremake: -2\n",
     "partitions/aggregated_analytics.yaml: premake: expected a whole number 0 or more, got -2"),
    ("table: aggregated_analytics\ncolumn: period_start\nexpire: shred\n",
     "partitions/aggregated_analytics.yaml: expire: expected one of detach, drop, got 'shred'"),
])
def test_bad_partition_spec_fields(cli, project, target_url, spec, expected):
    (project / "partitions" / "aggregated_analytics.yaml").write_text(spec)

    code, out, err = cli("plan")

    assert code == 1
    assert _one_clean_line(err) == f"error: {expected}"
    assert table_names(target_url) is None and scratch_databases(target_url) == 0


def test_monthly_spec_with_default_partition(cli, project, target_url):
    (project / "partitions" / "aggregated_analytics.yaml").write_text(
        "table: aggregated_analytics\ncolumn: period_start\ninterval: monthly\nkeep: 84\npremake: 2\n"
        "default_partition: true\n"
    )

    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0

    assert scalar(target_url, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'aggregated_analytics'::regclass") == 87
    assert scalar(target_url, "SELECT count(*) FROM pg_class WHERE relname IN "
                              "('aggregated_analytics_2019_07', 'aggregated_analytics_2026_08', 'aggregated_analytics_default')") == 3
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_plan_names_hazards_on_existing_tables_only(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0
    [first] = plan_files(project)
    assert "-- hazards: none on existing tables" in first.read_text()  # everything is new
    assert cli("apply")[0] == 0
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text() + "\nCREATE INDEX users_created_at_idx ON users (created_at);\n")

    code, out, err = cli("plan", "--as-of", AS_OF, "--format", "json", "--dry-run")

    assert code == 0, err
    [statement] = json.loads(out)["statements"]
    # On a live target the build becomes an online step: CONCURRENTLY, outside the transaction.
    assert statement["online_step"] and "CONCURRENTLY" in statement["sql"]
    assert statement["hazards"] == ["cannot run in a transaction"]

    (project / "reconcile.yaml").write_text("online: false\n")
    code, out, err = cli("plan", "--as-of", AS_OF, "--format", "json", "--dry-run")
    [statement] = json.loads(out)["statements"]
    assert statement["hazards"] == ["blocks writes while building an index"] and not statement["online_step"]


def test_squawk_findings_in_the_plan_and_lint_command(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text() + "\nCREATE INDEX users_created_at_idx ON users (created_at);\n")
    (project / "reconcile.yaml").write_text("online: false\n")  # else the build is CONCURRENTLY already

    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "index")

    assert code == 0, err
    assert "-- squawk: require-concurrent-index-creation" in out
    plan = plan_files(project)[-1]
    code, out, _ = cli("lint", str(plan))
    assert code == 2
    assert f"{plan}: statement 1: require-concurrent-index-creation" in out
    code, out, _ = cli("lint", str(plan_files(project)[0]))  # the first plan only creates new tables
    assert code == 0 and "No findings" in out


def _hold_lock_on_users(target_url, seconds):
    """Another session reading users in a long transaction: ALTER TABLE users must wait for it."""
    import time

    holder = psycopg2.connect(target_url)
    holder.cursor().execute("LOCK TABLE users IN ACCESS SHARE MODE")

    def release():
        time.sleep(seconds)
        holder.rollback()
        holder.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_lock_timeout_is_retried_until_the_lock_is_released(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    (project / "reconcile.yaml").write_text("timeouts:\n  lock_timeout: 200ms\n  lock_retries: 10\n"
                                            "  lock_retry_delay: 300ms\n")
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("created_at       timestamptz NOT NULL DEFAULT now()\n);",
                                               "created_at       timestamptz NOT NULL DEFAULT now(),\n    bio text\n);"))
    assert cli("plan", "--as-of", AS_OF)[0] == 0
    releaser = _hold_lock_on_users(target_url, 1.5)

    code, out, err = cli("apply")
    releaser.join()

    assert code == 0, err
    assert "waited longer than lock_timeout" in out and "trying again" in out
    assert scalar(target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 1


def test_lock_timeout_retries_exhausted(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    (project / "reconcile.yaml").write_text("timeouts:\n  lock_timeout: 100ms\n  lock_retries: 1\n"
                                            "  lock_retry_delay: 100ms\n")
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("created_at       timestamptz NOT NULL DEFAULT now()\n);",
                                               "created_at       timestamptz NOT NULL DEFAULT now(),\n    bio text\n);"))
    assert cli("plan", "--as-of", AS_OF)[0] == 0
    releaser = _hold_lock_on_users(target_url, 3)

    code, out, err = cli("apply")
    releaser.join()

    assert code == 1
    assert "could not get its lock within lock_timeout in 2 tries" in _one_clean_line(err)
    assert scalar(target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 0


def _add_bio_column(project):
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("created_at       timestamptz NOT NULL DEFAULT now()\n);",
                                               "created_at       timestamptz NOT NULL DEFAULT now(),\n    bio text\n);"))


def test_rollback_applies_the_rehearsed_reverse_of_the_last_plan(cli, project, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    _add_bio_column(project)
    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "bio")
    assert code == 0, err
    assert "-- rollback: migrations/rollback/<this file's name> (rehearsed: leads back exactly)" in out
    bio_plan = plan_files(project)[-1]
    assert (project / "migrations" / "rollback" / bio_plan.name).exists()
    assert cli("apply")[0] == 0

    code, _, err = cli("rollback")
    assert code == 1 and "destructive" in err  # the reverse drops the new column
    assert scalar(target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 1

    code, out, err = cli("rollback", "--allow-destructive")

    assert code == 0, err
    assert f"rolled back {bio_plan.name}" in out and "pending again" in out
    assert scalar(target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 0
    assert scalar(target_url, "SELECT count(*) FROM reconcile.history WHERE rolled_back_at IS NOT NULL") == 1
    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 2 and bio_plan.name in out and "Changed outside reconcile" not in out
    assert cli("apply")[0] == 0  # forward again
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_the_shipped_project_s_first_plan_has_a_rehearsed_rollback_to_nothing(cli, project, target_url):
    """The reverse of a plan that creates partitioned tables drops each partition before its parent."""
    code, out, err = cli("plan", "--as-of", AS_OF)
    assert code == 0, err
    assert "-- rollback: migrations/rollback/<this file's name> (rehearsed: leads back exactly)" in out
    [first] = plan_files(project)
    reverse = (project / "migrations" / "rollback" / first.name).read_text()
    assert reverse.index('drop table "public"."aggregated_analytics_2020";') < \
        reverse.index('drop table "public"."aggregated_analytics";')
    assert cli("apply")[0] == 0

    code, out, err = cli("rollback", "--allow-destructive")
    assert code == 0, err
    assert scalar(target_url, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = 'public'") == 0


def test_rollback_refused_after_the_database_moved_on(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    _add_bio_column(project)
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "CREATE INDEX users_bio_idx ON users (bio)")

    code, _, err = cli("rollback", "--allow-destructive")

    assert code == 1 and "the database changed since this plan was made" in err
    assert scalar(target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 1


def test_plan_with_a_data_step(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
    sql(target_url, "INSERT INTO users (id, email, organization_id) VALUES ('u1', 'a@example.com', 'o1')")
    sql(target_url, "INSERT INTO learner_analytics (user_id, role_id, user_role, organization_id, data) VALUES "
                    "('u1', 'r1', 'learner', 'o1', '{\"topicsPerWeek\": 3}'), ('u1', 'r2', 'learner', 'o1', '{}')")
    (project / "data").mkdir()
    (project / "data" / "velocity.sql").write_text(
        "-- topicsPerWeek is now called velocity\n"
        "UPDATE learner_analytics\n"
        "SET data = jsonb_set(data - 'topicsPerWeek', '{velocity}', data -> 'topicsPerWeek')\n"
        "WHERE data ? 'topicsPerWeek';\n"
    )
    _add_bio_column(project)

    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "velocity", "--data-after", "data/velocity.sql")

    assert code == 0, err
    assert "[DATA]" in out and "-- DATA STEP data (after the schema changes, from data/velocity.sql)" in out
    body = plan_files(project)[-1].read_text().split("-- ---- statements ----")[1]
    assert body.index('add column "bio"') < body.index("UPDATE learner_analytics")
    assert cli("apply")[0] == 0
    assert sql(target_url, "SELECT data FROM learner_analytics WHERE role_id = 'r1'")[0][0] == {"velocity": 3}
    assert sql(target_url, "SELECT data FROM learner_analytics WHERE role_id = 'r2'")[0][0] == {}
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_data_step_with_a_syntax_error(cli, project, target_url):
    (project / "bad.sql").write_text("UPDATE users SET email = ;\n")

    code, _, err = cli("plan", "--as-of", AS_OF, "--data-before", "bad.sql")

    assert code == 1
    assert _one_clean_line(err).startswith("error: bad.sql:1: syntax error")
    assert table_names(target_url) is None


def test_enum_value_added_through_plan_and_apply_keeps_counters(cli, project, target_url, sql):
    (project / "schema" / "050_status.sql").write_text(
        "CREATE TYPE learner_status AS ENUM ('active', 'paused');\n"
        "CREATE TABLE enrolments (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
        "    status learner_status NOT NULL DEFAULT 'active');\n"
    )
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO enrolments (status) SELECT 'paused' FROM generate_series(1, 3)")
    (project / "schema" / "050_status.sql").write_text(
        "CREATE TYPE learner_status AS ENUM ('active', 'paused', 'graduated');\n"
        "CREATE TABLE enrolments (id bigint GENERATED BY DEFAULT AS IDENTITY (INCREMENT BY 5 CACHE 10) PRIMARY KEY,\n"
        "    status learner_status NOT NULL DEFAULT 'graduated');\n"
    )

    code, out, err = cli("plan", "--as-of", AS_OF)

    assert code == 0, err
    assert "add value if not exists 'graduated'" in out and "-- reconcile: commit here" in out
    assert "rename to" not in out
    assert cli("apply")[0] == 0
    assert sql(target_url, "INSERT INTO enrolments DEFAULT VALUES RETURNING id, status")[0] == (8, "graduated")
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_a_reader_that_goes_away_is_not_an_error(project, target_url):
    """`reconcile drift | head` and `reconcile apply | head -1`: the verdict and the work stand, and
    nothing is said about a broken pipe."""
    base = [sys.executable, str(REPO / "reconcile.py")]
    for args, expected in ((["drift"], 2), (["plan", "--name", "first"], 0), (["apply"], 0), (["drift"], 0)):
        process = subprocess.Popen(base + [*args, "--project", str(project), "--database-url", target_url],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        process.stdout.close()  # the reader has gone before anything was written
        err = process.stderr.read()
        assert process.wait(timeout=180) == expected, err
        assert "BrokenPipe" not in err and "unexpected" not in err
    assert list((project / "migrations").glob("*_first.sql"))


def test_an_internal_error_exits_3_and_asks_for_a_report(cli, monkeypatch):
    """A bug (here: an exception injected into a correction) is never mistaken for a refusal (1) or a
    verdict (2): exit 3, one 'internal error' line naming the version."""
    from reconcile_engine.diff.corrections.rls import ForceRowLevelSecurity
    from reconcile_engine.version import __version__

    def broken(self, statements, current, desired, context):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(ForceRowLevelSecurity, "after_migra", broken)
    code, out, err = cli("plan", "--as-of", "2026-06-01", "--dry-run")

    assert code == 3
    assert err.startswith(f"internal error: RuntimeError: injected fault; this is a bug in reconcile {__version__}")
    assert "please report it" in err and "error: unexpected" not in err
