"""Stage tests for the diff corrections, in migra's fixture style: a folder per case (a.sql -> b.sql),
run on real databases, ending with "diffing again finds nothing" by migra and by our own snapshot."""

from pathlib import Path

import psycopg2
import pytest
import yaml
from conftest import server_major

from reconcile_engine.diff.corrections import all_corrections
from reconcile_engine.diff.migra_diff import diff
from reconcile_engine.inspection.snapshot import Scope
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.runner import PlanStatementFailed, run_statements

FIXTURES = Path(__file__).parent / "FIXTURES"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
# Cases where migra alone is wrong, so that the named corrections must make the difference.
CORRECTED_CASES = [c for c in CASES if yaml.safe_load((FIXTURES / c / "expect.yaml").read_text())["corrections"]]
SCHEMAS = Scope(("public",))


def _load(url, sql_text):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        if sql_text.strip():
            conn.cursor().execute(sql_text)
    finally:
        conn.close()


def _apply(url, statements):
    """The statements in one transaction (committing where a statement asks), as apply does;
    returns the error, or None."""
    conn = psycopg2.connect(url)
    try:
        run_statements(conn, statements, "fixture")
        conn.commit()
        return None
    except PlanStatementFailed as failed:
        conn.rollback()
        return failed
    finally:
        conn.close()


def _converges(a_url, b_url, corrections=None, scope=SCHEMAS):
    try:
        changes = diff(inspect_database(a_url, scope), inspect_database(b_url, scope), corrections=corrections)
    except Exception as exc:  # migra and schemainspect crash on some cases
        return None, f"diff failed: {type(exc).__name__}: {exc}"
    error = _apply(a_url, changes.statements)
    if error is not None:
        return changes, f"apply failed: {error}"
    again = diff(inspect_database(a_url, scope), inspect_database(b_url, scope))
    remaining = inspect_database(a_url, scope).snapshot.differences(inspect_database(b_url, scope).snapshot)
    if again.statements or remaining:
        return changes, f"not converged: {[s.sql for s in again.statements]} {[d.describe() for d in remaining]}"
    return changes, None


def _scope(expect):
    """Grants are compared only where a case manages them (expect.yaml: privileges: true)."""
    return Scope(("public",), privileges=bool(expect.get("privileges")))


def _case(case, new_database):
    """The case's expectations, and two fresh databases holding a.sql and b.sql."""
    folder = FIXTURES / case
    expect = yaml.safe_load((folder / "expect.yaml").read_text())
    a_url, b_url = new_database(), new_database()
    if expect.get("server_min") and server_major(a_url) < expect["server_min"]:
        pytest.skip(f"PostgreSQL {expect['server_min']} or later: what the case changes does not exist before")
    _load(a_url, (folder / "a.sql").read_text())
    _load(b_url, (folder / "b.sql").read_text())
    return expect, a_url, b_url


@pytest.mark.parametrize("case", CASES)
def test_case_converges_and_diffing_again_finds_nothing(case, new_database):
    expect, a_url, b_url = _case(case, new_database)

    changes, problem = _converges(a_url, b_url, scope=_scope(expect))

    assert problem is None, problem
    assert changes.statements, "the case must need changes"
    for name in expect["corrections"]:
        assert name in changes.corrections_used


@pytest.mark.parametrize("case", CASES)
def test_case_is_built_from_an_empty_database(case, new_database):
    """The declared side of every case, planned from nothing (a first deploy), converges too."""
    expect, a_url, b_url = _case(case, new_database)
    empty = new_database()

    changes, problem = _converges(empty, b_url, scope=_scope(expect))

    assert problem is None, problem


@pytest.mark.parametrize("case", CORRECTED_CASES)
def test_case_is_wrong_without_its_corrections(case, new_database):
    """Each correction earns its place: migra alone fails or leaves something undone."""
    expect, a_url, b_url = _case(case, new_database)
    without = [c for c in all_corrections() if c.name not in expect["corrections"]]

    _, problem = _converges(a_url, b_url, without, scope=_scope(expect))

    assert problem is not None


def test_unchanged_materialized_view_is_not_recreated(new_database):
    folder = FIXTURES / "matview_redefined"
    a_url, b_url = new_database(), new_database()
    _load(a_url, (folder / "b.sql").read_text())
    _load(b_url, (folder / "b.sql").read_text())

    changes = diff(inspect_database(a_url, SCHEMAS), inspect_database(b_url, SCHEMAS))

    assert changes.statements == ()


def test_a_view_reading_no_retyped_column_is_kept(new_database):
    """Only what reads a column whose type changes is re-created (views.unchanged-kept)."""
    folder = FIXTURES / "matview_over_a_retyped_column"
    a_url, b_url = new_database(), new_database()
    _load(a_url, (folder / "a.sql").read_text())
    _load(b_url, (folder / "b.sql").read_text())

    changes = diff(inspect_database(a_url, SCHEMAS), inspect_database(b_url, SCHEMAS))

    touched = " ".join(s.sql for s in changes.statements)
    assert "event_counts" not in touched and "busy_organizations" not in touched, touched
    assert 'drop materialized view if exists "public"."event_scores"' in touched
    assert "views.unchanged-kept" in changes.corrections_used
    without = [c for c in all_corrections() if c.name != "views.unchanged-kept"]
    assert "event_counts" in " ".join(s.sql for s in diff(inspect_database(a_url, SCHEMAS),
                                                          inspect_database(b_url, SCHEMAS), corrections=without).statements)


def test_view_text_normalization_equates_qualified_and_bare_columns_only():
    from reconcile_engine.diff.corrections.viewtext import normalized

    qualified = " SELECT t.a, count(*) AS n FROM t WHERE (t.b > 1) GROUP BY t.a;"
    bare = " SELECT a, count(*) AS n FROM t WHERE (b > 1) GROUP BY a;"
    assert normalized(qualified) == normalized(bare)
    assert normalized(bare) != normalized(" SELECT a, count(*) AS n FROM t WHERE (b > 2) GROUP BY a;")
    joined = " SELECT t.a FROM t JOIN u ON (t.id = u.id);"
    assert normalized(joined) != normalized(" SELECT a FROM t JOIN u ON (id = id);")
