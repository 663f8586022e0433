"""Online apply on a busy table: an index built CONCURRENTLY while another session writes, and an apply
interrupted in the middle of its online steps, resumed by the next apply."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest


AS_OF = "2026-06-01"
REPO = Path(__file__).resolve().parent.parent
INDEX = "\nCREATE INDEX learner_analytics_created_at_idx ON learner_analytics (created_at);\n"


@pytest.fixture
def busy_table(cli, project, target_url, sql):
    """The shipped schema applied, with enough rows in learner_analytics for a build to take a while."""
    (project / "reconcile.yaml").write_text("timeouts:\n  lock_timeout: 2s\n")
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
    sql(target_url, "INSERT INTO users (id, email, organization_id) VALUES ('u1', 'u@example.com', 'o1')")
    sql(target_url, "INSERT INTO learner_analytics (user_id, role_id, user_role, organization_id, created_at) "
                    "SELECT 'u1', 'r' || g, 'learner', 'o1', now() - g * interval '1 minute' "
                    "FROM generate_series(1, 200000) g")
    schema = project / "schema" / "030_learner_analytics.sql"
    schema.write_text(schema.read_text() + INDEX)
    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "index")
    assert code == 0, err
    assert "CREATE INDEX CONCURRENTLY" in out and "-- reconcile: online step" in out
    return target_url


def test_index_built_online_while_writes_go_on(cli, busy_table, sql):
    stop, latencies, written = threading.Event(), [], []

    def writer():
        conn = psycopg2.connect(busy_table)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                started = time.monotonic()
                cur.execute("INSERT INTO learner_analytics (user_id, role_id, user_role, organization_id) "
                            "VALUES ('u1', 'w', 'learner', 'o1') RETURNING id")
                written.append(cur.fetchone()[0])
                latencies.append(time.monotonic() - started)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    try:
        code, out, err = cli("apply")
    finally:
        stop.set()
        thread.join()

    assert code == 0, err
    assert "online step" in out
    assert max(latencies) < 2.0  # never blocked longer than the lock timeout
    assert len(written) > 10
    assert sql(busy_table, "SELECT count(*) FROM learner_analytics WHERE role_id = 'w'")[0][0] == len(written)
    assert sql(busy_table, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                           "'learner_analytics_created_at_idx'::regclass")[0][0]
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_apply_killed_during_an_online_step_resumes(cli, project, busy_table, sql):
    # An open snapshot makes CREATE INDEX CONCURRENTLY wait, so the apply is caught inside the step.
    blocker = psycopg2.connect(busy_table)
    blocker.set_session(isolation_level="REPEATABLE READ")
    blocker.cursor().execute("SELECT count(*) FROM users")
    blocker_pid = blocker.get_backend_pid()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "reconcile.py"), "apply", "--project", str(project), "--database-url", busy_table],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        waiting = False
        while not waiting and time.monotonic() < deadline:
            # Caught while the build, its (still invalid) index made, waits on the open snapshot: a
            # session's last query shows in pg_stat_activity after it ended, so only an active wait counts.
            waiting = bool(sql(busy_table, "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND state = 'active' AND wait_event_type = 'Lock' "
                                           "AND query ILIKE 'CREATE INDEX CONCURRENTLY%' "
                                           "AND to_regclass('learner_analytics_created_at_idx') IS NOT NULL"))
            time.sleep(0.1)
        assert waiting
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        # The server side dies too, before the snapshot is released: a backend still finishing the
        # killed apply's statement would otherwise complete the build.
        others = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                  "AND backend_type = 'client backend' AND pid NOT IN (pg_backend_pid(), %s)")
        sql(busy_table, f"SELECT pg_terminate_backend(pid) FROM ({others}) o", (blocker_pid,))
        while sql(busy_table, others, (blocker_pid,)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not sql(busy_table, others, (blocker_pid,))
    finally:
        process.kill()
        blocker.close()
    time.sleep(0.5)
    assert sql(busy_table, "SELECT count(*) FROM reconcile.progress")[0][0] == 1  # the plan began (step 0); its online step not done
    assert sql(busy_table, "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = "
                           "'learner_analytics_created_at_idx'::regclass")[0][0]  # left INVALID

    code, out, err = cli("apply")

    assert code == 0, err
    assert "resuming its online steps" in out
    assert sql(busy_table, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                           "'learner_analytics_created_at_idx'::regclass")[0][0]
    assert sql(busy_table, "SELECT count(*) FROM reconcile.progress")[0][0] == 0
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_set_not_null_goes_through_a_validated_check(cli, project, target_url, sql):
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("created_at       timestamptz NOT NULL DEFAULT now()\n);",
                                               "created_at       timestamptz NOT NULL DEFAULT now(),\n    locale text\n);"))
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
    sql(target_url, "INSERT INTO users (id, email, organization_id, locale) VALUES ('u1', 'u@example.com', 'o1', 'en')")
    users.write_text(users.read_text().replace("    locale text\n", "    locale text NOT NULL\n"))

    code, out, err = cli("plan", "--as-of", AS_OF)

    assert code == 0, err
    assert "check (locale is not null) not valid" in out
    assert "-- reconcile: online step" in out and "validate constraint" in out
    assert cli("apply")[0] == 0
    assert sql(target_url, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass "
                           "AND attname = 'locale'")[0][0]
    assert sql(target_url, "SELECT count(*) FROM pg_constraint WHERE conname = 'users_locale_not_null_check'")[0][0] == 0
    assert cli("drift", "--as-of", AS_OF)[0] == 0
