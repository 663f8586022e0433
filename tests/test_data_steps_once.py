"""A data step runs once: after a rollback, applying the same plan again skips the data steps that
ran (unless --rerun-data-steps); each step is its own transaction, recorded with it, so an apply that
fails or is killed in a step keeps the steps before it, records them, and resumes at the failed one. On a
real server, through the command line."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconcile_engine.planning import planfile

AS_OF = "2026-06-01"
REPO = Path(__file__).resolve().parent.parent
AUDIT_ROWS = "SELECT count(*) FROM audit_log WHERE note = 'velocity renamed'"
COUNTER = "SELECT v FROM counters WHERE name = 'runs'"
RECORDS = "SELECT count(*) FROM reconcile.data_steps"
BIO_COLUMNS = "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'bio'"


def _one(sql, url, query):
    return sql(url, query)[0][0]


def _first_plan_with_counters(cli, project, sql, target_url, start=0):
    """The shipped schema plus an audit log and a counter, applied; the counter at `start`."""
    (project / "schema" / "060_audit.sql").write_text(
        "CREATE TABLE audit_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL);\n"
        "CREATE TABLE counters (name text PRIMARY KEY, v integer NOT NULL);\n"
        "CREATE TABLE pauses (x integer);  -- a row makes PAUSABLE_STEP sleep\n"
    )
    code, _, err = cli("plan", "--as-of", AS_OF, "--name", "first")
    assert code == 0, err
    code, _, err = cli("apply")
    assert code == 0, err
    sql(target_url, "INSERT INTO counters (name, v) VALUES ('runs', %s)", (start,))


# A data step that sleeps 30 s on the target while `pauses` holds a row (on the rehearsal's empty copy,
# never): a test stops apply in it, then empties `pauses` so that the apply that resumes runs it at once.
PAUSABLE_STEP = "UPDATE counters SET v = v + 1 WHERE pg_sleep((SELECT 30 * count(*) FROM pauses)) IS NOT NULL;\n"


def _plan_with_data_steps(cli, project, data_sql):
    """A second plan: a new column (so that it has a rollback to undo) and the data steps after it.
    Returns the plan file and the numbers of its data steps."""
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("created_at       timestamptz NOT NULL DEFAULT now()\n);",
                                               "created_at       timestamptz NOT NULL DEFAULT now(),\n    bio text\n);"))
    (project / "data").mkdir(exist_ok=True)
    (project / "data" / "steps.sql").write_text(data_sql)
    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "steps", "--data-after", "data/steps.sql")
    assert code == 0, err
    assert "[DATA]" in out
    path = sorted((project / "migrations").glob("*_steps.sql"))[-1]
    numbers = [n for n, s in enumerate(planfile.read(path).plan.statements, 1) if s.data_step]
    return path, numbers


AUDIT_AND_INCREMENT = (
    "INSERT INTO audit_log (note) VALUES ('velocity renamed');\n"
    "UPDATE counters SET v = v + 1 WHERE name = 'runs';\n"
)


def test_a_data_step_runs_once_across_rollback_and_apply_again(cli, project, target_url, sql):
    _first_plan_with_counters(cli, project, sql, target_url)
    path, numbers = _plan_with_data_steps(cli, project, AUDIT_AND_INCREMENT)
    assert len(numbers) == 2

    code, out, err = cli("apply")
    assert code == 0, err
    assert f"applied {path.name}" in out and "2 data step(s) run" in out
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (1, 1)
    # Recorded with its plan, number and SQL, and linked to the apply that ran it.
    rows = sql(target_url, "SELECT d.plan_file, d.statement, length(d.sql_sha256), h.plan_file "
                           "FROM reconcile.data_steps d JOIN reconcile.history h ON h.id = d.history_id "
                           "ORDER BY d.statement")
    assert rows == [(path.name, numbers[0], 64, path.name), (path.name, numbers[1], 64, path.name)]

    code, out, err = cli("rollback", "--allow-destructive")
    assert code == 0, err
    assert _one(sql, target_url, BIO_COLUMNS) == 0
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (1, 1)  # data is not reversed

    # Applied again: the schema change runs, the data steps do not, and apply says so.
    code, out, err = cli("apply", "--format", "json")
    assert code == 0, err
    assert _one(sql, target_url, BIO_COLUMNS) == 1
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (1, 1)
    for number in numbers:
        assert f"data step {number} of {path.name} already ran on " in err
    assert err.count("skipped; --rerun-data-steps runs it again") == 2
    report = json.loads(out)
    assert [s["statement"] for s in report["skipped_data_steps"]] == numbers
    assert report["applied"][0]["data_steps_ran"] == 0
    assert [s["plan"] for s in report["applied"][0]["skipped_data_steps"]] == [path.name, path.name]
    assert _one(sql, target_url, RECORDS) == 2

    # The text output lists them too; --rerun-data-steps runs them again, and records them again.
    code, _, err = cli("rollback", "--allow-destructive")
    assert code == 0, err
    code, out, err = cli("apply", "--rerun-data-steps")
    assert code == 0, err
    assert "runs again (--rerun-data-steps)" in out and "skipped" not in out
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (2, 2)
    assert _one(sql, target_url, RECORDS) == 4

    code, out, err = cli("status", "--format", "json")
    assert code == 0, err
    ran = [e["data_steps_ran"] for e in json.loads(out)["applied"] if e["plan_file"] == path.name]
    assert ran == [2, 0, 2]
    code, out, _ = cli("status")
    assert out.count("2 data step(s) run") == 2

    # Once more without the flag: skipped again, in text.
    assert cli("rollback", "--allow-destructive")[0] == 0
    code, out, err = cli("apply")
    assert code == 0, err
    assert out.count("skipped; --rerun-data-steps runs it again") == 4  # the progress line and the summary
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (2, 2)


def test_a_history_from_an_older_reconcile_without_the_data_steps_table(cli, project, target_url, sql):
    _first_plan_with_counters(cli, project, sql, target_url)
    sql(target_url, "DROP TABLE reconcile.data_steps")  # as an older reconcile left it
    path, _ = _plan_with_data_steps(cli, project, AUDIT_AND_INCREMENT)

    code, out, err = cli("status", "--format", "json")  # reading does not need it, nor make it
    assert code == 0, err
    assert [e["data_steps_ran"] for e in json.loads(out)["applied"]] == [None]  # unknown, not 0
    assert json.loads(out)["pending"] == [path.name]
    assert sql(target_url, "SELECT to_regclass('reconcile.data_steps')")[0][0] is None

    code, out, err = cli("apply")
    assert code == 0, err
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (1, 1)
    assert _one(sql, target_url, RECORDS) == 2


def test_a_data_step_edited_after_its_rollback_is_another_step_and_runs(cli, project, target_url, sql):
    """Its sha256 differs from the recorded one: the sealed plan was edited and rehearsed again."""
    _first_plan_with_counters(cli, project, sql, target_url)
    path, numbers = _plan_with_data_steps(cli, project, AUDIT_AND_INCREMENT)
    assert cli("apply")[0] == 0
    assert cli("rollback", "--allow-destructive")[0] == 0
    path.write_text(path.read_text().replace("SET v = v + 1 WHERE", "SET v = v + 10 WHERE"))
    code, _, err = cli("apply")
    assert code == 1 and "rehearse" in err  # the seal: no edit runs unrehearsed
    code, _, err = cli("rehearse", str(path))
    assert code == 0, err

    code, out, err = cli("apply")

    assert code == 0, err
    assert f"data step {numbers[1]} of {path.name}: its SQL is not the one that ran on " in out
    assert f"data step {numbers[0]} of {path.name} already ran on " in out
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (1, 11)


def test_a_failed_data_step_records_nothing_and_runs_once_fixed(cli, project, target_url, sql):
    _first_plan_with_counters(cli, project, sql, target_url, start=0)
    # The second step divides by the counter: it fails while the counter is 0. The rehearsal, on an
    # empty copy, updates no row and passes.
    path, numbers = _plan_with_data_steps(cli, project, "INSERT INTO audit_log (note) VALUES ('velocity renamed');\n"
                                                        "UPDATE counters SET v = 100 / v WHERE name = 'runs';\n")

    code, _, err = cli("apply")
    assert code == 1
    assert f"statement {numbers[1]}" in err and "division by zero" in err and "resumes from this step" in err
    # The DDL and the first step committed, each in its own transaction, the first step recorded with it.
    assert _one(sql, target_url, AUDIT_ROWS) == 1 and _one(sql, target_url, BIO_COLUMNS) == 1
    assert _one(sql, target_url, RECORDS) == 1
    assert _one(sql, target_url, "SELECT count(*) FROM reconcile.history") == 1  # the plan is not applied yet

    sql(target_url, "UPDATE counters SET v = 4 WHERE name = 'runs'")
    code, out, err = cli("apply")
    assert code == 0, err
    assert "skipped" not in out
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (1, 25)
    assert _one(sql, target_url, RECORDS) == 2


SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'UPDATE counters%pg_sleep%'"


def _apply_killed_in_its_sleeping_step(project, target_url, sql):
    """Start apply, wait until its data step sleeps on the server, kill it (SIGKILL); returns when it died."""
    process = subprocess.Popen([sys.executable, str(REPO / "reconcile.py"), "apply", "--project", str(project),
                                "--database-url", target_url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _one(sql, target_url, SLEEPING) == 0:
        assert process.poll() is None and time.monotonic() < deadline, "apply never reached its data step"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_an_apply_killed_during_a_data_step_records_nothing(cli, project, target_url, sql):
    _first_plan_with_counters(cli, project, sql, target_url)
    # The second step sleeps on the target's one counter row (on the rehearsal's empty copy, never).
    path, _ = _plan_with_data_steps(cli, project, "INSERT INTO audit_log (note) VALUES ('velocity renamed');\n"
                                                  "UPDATE counters SET v = v + 1 WHERE pg_sleep(2) IS NOT NULL;\n")
    _apply_killed_in_its_sleeping_step(project, target_url, sql)
    deadline = time.monotonic() + 120
    while _one(sql, target_url, SLEEPING):  # the server ends the session once the step returns
        assert time.monotonic() < deadline
        time.sleep(0.1)

    # The first step committed and was recorded in its own transaction; the killed one left nothing.
    assert _one(sql, target_url, AUDIT_ROWS) == 1 and _one(sql, target_url, RECORDS) == 1
    assert _one(sql, target_url, COUNTER) == 0
    assert _one(sql, target_url, "SELECT count(*) FROM reconcile.history") == 1
    code, out, err = cli("apply")
    assert code == 0, err
    assert (_one(sql, target_url, AUDIT_ROWS), _one(sql, target_url, COUNTER)) == (1, 1)
    assert _one(sql, target_url, RECORDS) == 2


def test_a_killed_apply_s_statement_ends_with_it_on_the_server(cli, project, target_url, sql):
    """No lock outlives its client: the server checks every second that apply is still there
    (client_connection_check_interval), so a killed apply's 30-second step, its row locks and the apply
    lock end within seconds, not when the statement would have; the next apply runs the step once."""
    _first_plan_with_counters(cli, project, sql, target_url)
    path, _ = _plan_with_data_steps(cli, project, PAUSABLE_STEP)
    sql(target_url, "INSERT INTO pauses VALUES (1)")
    _apply_killed_in_its_sleeping_step(project, target_url, sql)
    # The application's query on the row the step holds: it waits for the server to notice.
    started = time.monotonic()
    assert sql(target_url, "UPDATE counters SET v = v WHERE name = 'runs' RETURNING v") == [(0,)]
    assert time.monotonic() - started < 3, "the killed apply's statement held its row on the server"
    while _one(sql, target_url, SLEEPING):  # its backend, aborted, is on its way out
        assert time.monotonic() - started < 10
        time.sleep(0.1)

    # Nothing of the step was committed; the next apply resumes at it and runs it once.
    sql(target_url, "DELETE FROM pauses")
    code, out, err = cli("apply")
    assert code == 0, err
    assert f"applied {path.name}" in out
    assert _one(sql, target_url, COUNTER) == 1 and _one(sql, target_url, RECORDS) == 1
    code, out, err = cli("drift", "--as-of", AS_OF)
    assert code == 0, out + err
