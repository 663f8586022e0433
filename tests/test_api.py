"""The public API (reconcile_engine), driven the way a Python caller would: no command line, typed results."""

import dataclasses
import datetime as dt

import pytest

import reconcile_engine as reconcile
from reconcile_engine.errors import (
    ConfigError, DestructiveNotApprovedError, NothingToRollBackError, PendingPlansError, ReconcileError,
)
from reconcile_engine.results import ApplyResult, DriftReport, PlanResult, StatusReport


def test_plan_apply_and_drift_through_the_api_alone(project, target_url, sql, capsys):
    loaded = reconcile.load_project(project)

    before = reconcile.drift(loaded, target_url)
    assert isinstance(before, DriftReport) and not before.in_sync
    assert before.declared_state == "built" and before.fix_sql and not before.pending_plans

    planned = reconcile.plan(loaded, target_url, name="first")
    assert isinstance(planned, PlanResult) and planned.changes
    assert planned.file.parent == loaded.migrations and planned.file.name.endswith("_first.sql")
    assert planned.plan.fingerprint_before == before.fingerprint
    assert planned.plan.fingerprint_after == before.declared_fingerprint
    creates = [s for s in planned.plan.statements if s.summary.startswith("create table public.organizations")]
    assert creates and creates[0].facts.node == "CreateStmt" and not creates[0].destructive
    assert planned.to_dict()["file"] == str(planned.file) and planned.to_dict()["changes"] is True

    status = reconcile.status(loaded, target_url)
    assert isinstance(status, StatusReport) and status.pending == (planned.file.name,) and not status.applied

    applied = reconcile.apply(loaded, target_url)
    assert isinstance(applied, ApplyResult)
    assert [a.name for a in applied.applied] == [planned.file.name]
    assert applied.applied[0].statements == len(planned.plan.statements)

    after = reconcile.drift(loaded, target_url)
    assert after.in_sync and after.fingerprint == planned.plan.fingerprint_after
    assert after.to_dict()["in_sync"] is True and after.to_dict()["pending_plans"] == []
    assert sql(target_url, "SELECT count(*) FROM reconcile.history")[0][0] == 1
    # Nothing printed: the caller renders.
    assert capsys.readouterr() == ("", "")


def test_no_changes_is_a_result_not_an_error(project, target_url):
    loaded = reconcile.load_project(project)
    reconcile.plan(loaded, target_url)
    reconcile.apply(loaded, target_url)

    again = reconcile.plan(loaded, target_url, write=False)

    assert not again.changes and again.plan is None and again.file is None
    assert again.to_dict()["changes"] is False


def test_errors_are_typed_and_change_nothing(project, target_url, sql):
    loaded = reconcile.load_project(project)
    first = reconcile.plan(loaded, target_url, name="first")

    with pytest.raises(PendingPlansError, match="not yet applied"):
        reconcile.plan(loaded, target_url, name="second")
    with pytest.raises(NothingToRollBackError, match="nothing to roll back"):
        reconcile.rollback(loaded, target_url)
    assert sorted(p.name for p in loaded.migrations.glob("*.sql")) == [first.file.name]
    assert sql(target_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0] == 0

    (project / "reconcile.yaml").write_text("managed_schemas: 3\n")
    with pytest.raises(ConfigError) as raised:
        reconcile.load_project(project)
    assert isinstance(raised.value, ReconcileError) and "managed_schemas" in str(raised.value)


def test_a_destructive_plan_is_refused_until_approved(project, target_url, sql):
    loaded = reconcile.load_project(project)
    reconcile.plan(loaded, target_url)
    reconcile.apply(loaded, target_url)
    sql(target_url, "CREATE TABLE public.scratch_notes (id int)")  # outside reconcile: not declared
    sql(target_url, "INSERT INTO public.scratch_notes VALUES (1)")
    sql(target_url, "UPDATE reconcile.history SET fingerprint_after = %s",
        (reconcile.drift(loaded, target_url).fingerprint,))

    dropping = reconcile.plan(loaded, target_url, name="drop_notes")

    [drop] = [s for s in dropping.plan.statements if s.destructive]
    assert drop.summary.startswith("drop table public.scratch_notes") and drop.rows == 1
    assert drop.lock == "ACCESS EXCLUSIVE" and drop.facts.object_type == "OBJECT_TABLE"
    with pytest.raises(DestructiveNotApprovedError, match="destructive"):
        reconcile.apply(loaded, target_url)
    assert sql(target_url, "SELECT count(*) FROM public.scratch_notes")[0][0] == 1
    done = reconcile.apply(loaded, target_url, allow_destructive=True)
    assert [a.name for a in done.applied] == [dropping.file.name]
    assert reconcile.drift(loaded, target_url).in_sync


def test_results_are_frozen_data():
    report = DriftReport(target="t", as_of=dt.date(2026, 1, 1).isoformat(), fingerprint="a", declared_fingerprint="a",
                         declared_state="built", last_applied_fingerprint=None, changed_outside_reconcile=False,
                         pending_plans=(), pending_plans_explain_differences=False, missing_partitions=(),
                         stranded_rows=(), differences=(), fix_sql=(), not_compared=(), lint_warnings=())
    assert report.in_sync
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.in_sync = False  # type: ignore[misc]
    assert not dataclasses.replace(report, fix_sql=("drop table x;",)).in_sync
