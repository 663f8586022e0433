"""Stage tests for the sweep of leftovers: what a killed run left on the scratch server is dropped by the
next run, and nothing else is: not a live run's, not another host's recent or used objects, not a name
that only looks like reconcile's, whatever the comments say."""

import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import psycopg2
import pytest
from conftest import _with_database
from test_cli import AS_OF, REPO, _sweep_after

from reconcile_engine.cli import run
from reconcile_engine.scratch.databases import ScratchDatabase
from reconcile_engine.scratch.space import ScratchServer, build_role_on
from reconcile_engine.scratch.leftovers import VALID_FOR, _process_start, sweep, this_run
from reconcile_engine.sqltext import quote_ident


def _names_of(sql, url, pid):
    """The scratch databases and build roles whose names carry `pid`."""
    return [row[0] for row in sql(
        url, "SELECT datname FROM pg_database WHERE datname LIKE %s UNION ALL "
             "SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
        (f"reconcile\\_scratch\\_%\\_{pid}\\_%", f"reconcile\\_build\\_{pid}\\_%"))]


def _of_gone_processes(sql, url):
    """Every scratch database and build role on the server whose name's pid is not running here (on a
    shared server, a concurrent test run's objects are alive, and not the concern of this one)."""
    names = [row[0] for row in sql(
        url, "SELECT datname FROM pg_database WHERE datname LIKE 'reconcile\\_scratch\\_%' UNION ALL "
             "SELECT rolname FROM pg_roles WHERE rolname LIKE 'reconcile\\_build\\_%'")]

    def running(name):
        pid = name.split("_")[-2]
        if not pid.isdigit():
            return True  # not named by a run (this file's own objects, say)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True

    return [name for name in names if not running(name)]


def _dead_pid():
    """A pid that ran here and is gone (reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _comment(**changes):
    """A comment as reconcile writes it, for this run unless `changes` say otherwise."""
    fields = {"made_by": "reconcile", **dataclasses.asdict(this_run()),
              "created": dt.datetime.now(dt.timezone.utc).isoformat()}
    fields.update(changes)
    return json.dumps(fields)


def _hours_ago(hours):
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)).isoformat()


@pytest.fixture
def made(pg_server_url, sql):
    """make(kind, name, comment) -> name: a database (owned by the test's superuser, not a build role) or
    a role, with that comment; every one dropped after the test, whatever happened."""
    objects = []

    def make(kind, name, comment=None, create_options=""):
        objects.append((kind, name))
        if kind == "database":
            sql(pg_server_url, f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0")
        else:
            sql(pg_server_url, f"CREATE ROLE {quote_ident(name)} {create_options}")
        if comment is not None:
            sql(pg_server_url, f"COMMENT ON {kind.upper()} {quote_ident(name)} IS %s", (comment,))
        return name

    yield make
    for kind, name in reversed(objects):
        statement = (f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)" if kind == "database"
                     else f"DROP ROLE IF EXISTS {quote_ident(name)}")
        sql(pg_server_url, statement)


def _exists(sql, url, kind, name):
    query = ("SELECT count(*) FROM pg_database WHERE datname = %s" if kind == "database"
             else "SELECT count(*) FROM pg_roles WHERE rolname = %s")
    return sql(url, query, (name,))[0][0] == 1


def _unique(prefix="reconcile_scratch_t_"):
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def test_a_plan_killed_with_sigkill_leaves_nothing_after_the_next_command(project, target_url, pg_server_url, sql):
    # A partition bound is evaluated when its partition is created: a slow one keeps the build busy.
    slow = project / "views" / "000_slow.sql"
    slow.write_text("CREATE TABLE slow (d date) PARTITION BY RANGE (d);\n"
                    "CREATE TABLE slow_2020 PARTITION OF slow FOR VALUES FROM "
                    "(('2020-01-01' || pg_sleep(60)::text)::date) TO ('2021-01-01');\n")
    base = [sys.executable, str(REPO / "reconcile.py")]
    process = subprocess.Popen(base + ["plan", "--project", str(project), "--database-url", target_url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(name.startswith("reconcile_scratch_") for name in _names_of(sql, pg_server_url, process.pid)):
            assert process.poll() is None and time.monotonic() < deadline, "plan never made its scratch database"
            time.sleep(0.1)
        time.sleep(0.5)  # into the slow statement: a server session still busy in the database
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        left = _names_of(sql, pg_server_url, process.pid)
        databases = [name for name in left if name.startswith("reconcile_scratch_")]
        assert databases and any(name.startswith("reconcile_build_") for name in left)  # what the kill leaves

        slow.unlink()
        drift = subprocess.run(base + ["drift", "--project", str(project), "--database-url", target_url,
                                       "--as-of", AS_OF], capture_output=True, text=True, timeout=300)

        assert drift.returncode == 2 and "Drift:" in drift.stdout, drift.stderr  # the empty target drifts
        notes = [line for line in drift.stderr.splitlines() if line.startswith("note: ")]
        for name in databases:
            assert (f"note: removed scratch database {name} left by a run that is gone (pid {process.pid} on "
                    f"host {socket.gethostname()}, started ") in drift.stderr, drift.stderr
        assert any(line.startswith("note: removed build role reconcile_build_") for line in notes), drift.stderr
        assert _names_of(sql, pg_server_url, process.pid) == []
        assert _of_gone_processes(sql, pg_server_url) == []
        assert "Traceback" not in drift.stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        _sweep_after(process.pid, pg_server_url)


def test_the_objects_of_a_live_run_are_kept(pg_server_url, sql):
    server = ScratchServer(pg_server_url, False)
    with build_role_on(server, 10) as server, ScratchDatabase(server, "live") as scratch:
        role = server.builder.name
        sql(scratch.url, "SELECT 1")  # made when first used
        comments = [sql(pg_server_url, "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                       "WHERE datname = %s", (scratch.name,))[0][0],
                    sql(pg_server_url, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
                        (role,))[0][0]]
        for comment in comments:
            recorded = json.loads(comment)
            assert (recorded["host"], recorded["pid"]) == (socket.gethostname(), os.getpid())
            assert recorded["started"] and dt.datetime.fromisoformat(recorded["created"]).tzinfo is not None

        removed = sweep(pg_server_url, 10)

        assert {scratch.name, role}.isdisjoint(leftover.name for leftover in removed)
        assert _exists(sql, pg_server_url, "database", scratch.name) and _exists(sql, pg_server_url, "role", role)
        sql(scratch.url, "SELECT 1")  # and still usable
    assert not _exists(sql, pg_server_url, "database", scratch.name)


def test_another_live_process_s_objects_are_kept_and_a_reused_pid_s_are_swept(pg_server_url, sql, made):
    other = subprocess.Popen(["sleep", "60"])
    try:
        start = _process_start(other.pid)
        ticks = start[0] if start else None
        alive = made("database", _unique(), _comment(pid=other.pid, start_ticks=ticks))
        mine = made("role", _unique("reconcile_build_t_"), _comment())
        reused = made("database", _unique(), _comment(pid=other.pid, start_ticks=(ticks or 0) + 1))
        reused_mine = made("role", _unique("reconcile_build_t_"), _comment(start_ticks=(this_run().start_ticks or 1) - 1))
        gone = made("database", _unique(), _comment(pid=_dead_pid()))

        removed = {leftover.name: leftover for leftover in sweep(pg_server_url, 10)}

        assert alive not in removed and mine not in removed
        assert _exists(sql, pg_server_url, "database", alive) and _exists(sql, pg_server_url, "role", mine)
        assert gone in removed and not _exists(sql, pg_server_url, "database", gone)
        if start is None:
            pytest.skip("no /proc here: a live pid counts as alive, whatever its start time")
        for name, pid in ((reused, other.pid), (reused_mine, os.getpid())):
            assert name in removed, removed
            assert f"pid {pid} is now a process started " in removed[name].why
        assert removed[reused].kind == "database" and removed[reused_mine].kind == "role"
        assert not _exists(sql, pg_server_url, "database", reused) and not _exists(sql, pg_server_url, "role", reused_mine)
    finally:
        other.kill()
        other.wait()


def test_another_host_s_objects_are_swept_only_when_old_and_unused(pg_server_url, sql, made):
    elsewhere = {"host": "elsewhere.example", "boot": None, "pid_namespace": None}
    recent = made("database", _unique(), _comment(**elsewhere))
    old = made("database", _unique(), _comment(**elsewhere, created=_hours_ago(13)))
    old_role = made("role", _unique("reconcile_build_t_"), _comment(**elsewhere, created=_hours_ago(13)))
    used = made("database", _unique(), _comment(**elsewhere, created=_hours_ago(13)))
    # The same host name on another machine (another boot) is another host too.
    other_machine = made("database", _unique(), _comment(boot="another-boot", pid=_dead_pid()))
    session = psycopg2.connect(_with_database(pg_server_url, used))
    try:
        removed = {leftover.name: leftover for leftover in sweep(pg_server_url, 10)}
    finally:
        session.close()

    assert set(removed) >= {old, old_role}
    assert removed[old].host == "elsewhere.example" and f"more than {VALID_FOR.total_seconds() / 3600:.0f} hours" in removed[old].why
    assert {recent, used, other_machine}.isdisjoint(removed)
    for name in (recent, used, other_machine):
        assert _exists(sql, pg_server_url, "database", name)
    assert not _exists(sql, pg_server_url, "database", old) and not _exists(sql, pg_server_url, "role", old_role)


def test_objects_without_a_comment_go_only_with_their_expired_build_role(pg_server_url, sql, made):
    expired = made("role", _unique("reconcile_build_t_"), None, "LOGIN VALID UNTIL '2020-01-01'")
    valid = made("role", _unique("reconcile_build_t_"), None, "LOGIN VALID UNTIL 'infinity'")
    database_of_expired = made("database", _unique())
    database_of_valid = made("database", _unique())
    sql(pg_server_url, f"ALTER DATABASE {quote_ident(database_of_expired)} OWNER TO {quote_ident(expired)}")
    sql(pg_server_url, f"ALTER DATABASE {quote_ident(database_of_valid)} OWNER TO {quote_ident(valid)}")

    removed = {leftover.name: leftover for leftover in sweep(pg_server_url, 10)}

    assert {database_of_expired, expired} <= set(removed)  # the database first: then its role can go
    assert removed[expired].host is None and "earlier reconcile" in removed[expired].why
    assert {valid, database_of_valid}.isdisjoint(removed)
    assert _exists(sql, pg_server_url, "role", valid) and _exists(sql, pg_server_url, "database", database_of_valid)


def test_a_role_that_still_owns_something_is_skipped(pg_server_url, sql, made, new_database):
    owner = made("role", _unique("reconcile_build_t_"), _comment(pid=_dead_pid()))
    elsewhere = new_database()  # not a scratch database: the sweep never drops it, so the role stays
    sql(elsewhere, f"CREATE TABLE kept (id int); ALTER TABLE kept OWNER TO {quote_ident(owner)}")

    removed = sweep(pg_server_url, 10)

    assert owner not in {leftover.name for leftover in removed}
    assert _exists(sql, pg_server_url, "role", owner)
    sql(elsewhere, "DROP TABLE kept")


def _hostile_comments(dead_pid):
    """Comments that are not identities reconcile wrote, though some come close: each names a dead pid
    or an old creation, so a lax reading would drop the object."""
    old = "2020-01-01T00:00:00+00:00"
    return [
        "not json {", '"just a string"', "'; DROP DATABASE postgres; --", "null", "", json.dumps([dead_pid]),
        _comment(host="x" * 100_000, pid=dead_pid, created=old),
        _comment(host="line\nbreak", pid=dead_pid, created=old),
        _comment(made_by="someone else", pid=dead_pid),
        _comment(pid=0), _comment(pid=-1), _comment(pid=str(dead_pid)), _comment(pid=True), _comment(pid=2**40),
        _comment(pid=dead_pid, created="yesterday"), _comment(pid=dead_pid, created="2020-01-01T00:00:00"),
        _comment(pid=dead_pid, start_ticks="soon"), _comment(pid=dead_pid, host=None),
    ]


def test_hostile_comments_and_names_touch_nothing_outside_reconcile_s_scratch_space(pg_server_url, sql, made):
    dead_pid = _dead_pid()
    dead = _comment(pid=dead_pid)
    hostile = _hostile_comments(dead_pid)
    # Not identities, and owned by no build role (nor past a VALID UNTIL): nothing says their run is gone.
    kept = [made("database", _unique(), comment) for comment in hostile[:8]]
    kept += [made("role", _unique("reconcile_build_t_"), comment) for comment in hostile[8:]]
    # A dead run's, but only look-alikes of the prefixes (an unescaped _ in LIKE matches any character).
    look_alikes = [made("database", f"reconcilexscratch_{uuid.uuid4().hex[:8]}", dead),
                   made("database", f"reconcile_scratchy{uuid.uuid4().hex[:8]}", dead),
                   made("database", f"Reconcile_scratch_{uuid.uuid4().hex[:8]}", dead),
                   made("role", f"reconcile_buildx{uuid.uuid4().hex[:8]}", dead)]
    # A dead run's, with a name that must be quoted to be dropped.
    quoted = made("database", f"reconcile_scratch_'\";-- {uuid.uuid4().hex[:8]}", dead)
    # Another host's, old, with a hostile but well-formed identity: dropped, its text never reaching SQL.
    hostile_host = made("database", _unique(), _comment(host="'; DROP DATABASE postgres; --", created=_hours_ago(13)))

    removed = {leftover.name: leftover for leftover in sweep(pg_server_url, 10)}

    assert {quoted, hostile_host} <= set(removed)
    assert removed[hostile_host].host == "'; DROP DATABASE postgres; --"
    assert set(removed).isdisjoint(kept + look_alikes)
    for name in kept + look_alikes:
        kind = "role" if "build" in name else "database"
        assert _exists(sql, pg_server_url, kind, name), name
    assert not _exists(sql, pg_server_url, "database", quoted)
    assert _exists(sql, pg_server_url, "database", "postgres")


def test_the_command_line_notes_each_removal_once_however_often_it_runs(capsys, pg_server_url, made):
    from reconcile_engine.cli import _Notes

    gone = made("database", _unique(), _comment(pid=_dead_pid()))
    assert run(["--version"]) == 0 and run(["--version"]) == 0  # each run installs its note handler, once
    capsys.readouterr()

    sweep(pg_server_url, 10)

    notes = [line for line in capsys.readouterr().err.splitlines() if gone in line]
    assert len(notes) == 1 and notes[0].startswith(f"note: removed scratch database {gone} left by a run that "
                                                   f"is gone (pid ")
    engine = logging.getLogger("reconcile_engine")
    assert sum(isinstance(handler, _Notes) for handler in engine.handlers) == 1 and engine.propagate is False
