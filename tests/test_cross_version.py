"""The shipped schema declared once, loaded into PostgreSQL 15 (RECONCILE_TEST_DATABASE_URL) and into the
embedded PostgreSQL 18: diffing the two finds nothing, either way."""

import datetime as dt
from pathlib import Path

import pytest

from reconcile_engine.config import load_config
from reconcile_engine.declared.files import load_desired_state
from reconcile_engine.diff.migra_diff import diff
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.scratch.databases import ScratchDatabase
from reconcile_engine.scratch.space import ScratchServer

from conftest import embedded_server, server_major

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def other_server_url(pg_server_url):
    """An embedded PostgreSQL 18 beside the test server, when the test server is another major."""
    if server_major(pg_server_url) == 18:
        pytest.skip("the test server is the embedded PostgreSQL 18: set RECONCILE_TEST_DATABASE_URL to another major")
    with embedded_server("reconcile-test-pg18-") as url:
        yield url


def test_shipped_schema_diffs_empty_between_15_and_18(pg_server_url, other_server_url):
    config = load_config(REPO)
    desired = load_desired_state(config, dt.date(2026, 6, 1))
    with ScratchDatabase(ScratchServer(pg_server_url, False), "xver") as older, \
            ScratchDatabase(ScratchServer(other_server_url, False), "xver") as newer:
        older.load_desired(desired)
        newer.load_desired(desired)

        forward = diff(inspect_database(older.url, config.scope), inspect_database(newer.url, config.scope))
        backward = diff(inspect_database(newer.url, config.scope), inspect_database(older.url, config.scope))

    assert [s.sql for s in forward.statements] == []
    assert [s.sql for s in backward.statements] == []
