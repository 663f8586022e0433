"""Stage tests for the rehearsal: the plan runs forward on a copy of the target while its reverse runs
on the database the declared state was built in; both must land exactly where they should."""

import contextlib
import dataclasses
import datetime as dt

import pytest

from reconcile_engine.config import load_config
from reconcile_engine.diff.migra_diff import diff
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.inspection.snapshot import read_snapshot
from reconcile_engine.planning.build import build_plan
from reconcile_engine.rehearsal.rehearse import rehearse
from reconcile_engine.rehearsal.target_copy import copy_target
from reconcile_engine.scratch.databases import ScratchDatabase
from reconcile_engine.scratch.space import ScratchServer

TARGET = "CREATE TABLE account (id bigint PRIMARY KEY, name text NOT NULL);"
DECLARED = """
CREATE TABLE account (id bigint PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE note (id bigint PRIMARY KEY, account_id bigint REFERENCES account (id), body text);
CREATE INDEX note_account_idx ON note (account_id);
"""


@pytest.fixture
def stage(tmp_path, pg_server_url, target_url, sql):
    """The target (TARGET loaded), a copy of it and the declared state (DECLARED) in scratch databases,
    both inspected, and the plan between them; yields what rehearse() takes."""
    with rehearsal_stage(tmp_path, pg_server_url, target_url, sql, TARGET, DECLARED) as staged:
        yield staged


@contextlib.contextmanager
def rehearsal_stage(tmp_path, pg_server_url, target_url, sql, target_sql, declared_sql):
    """What rehearse() takes, for the target holding `target_sql` and the declared state `declared_sql`."""
    (tmp_path / "schema").mkdir()
    config = load_config(tmp_path)
    sql(target_url, target_sql)
    server = ScratchServer(pg_server_url, True)
    with ScratchDatabase(server, "rehearsal") as copy, ScratchDatabase(server, "desired") as declared:
        current = inspect_database(target_url, config.scope)
        copy_target(copy, target_url, current.snapshot, config, lambda: current)
        sql(declared.url, declared_sql)
        desired = inspect_database(declared.url, config.scope)
        plan = build_plan(diff(current, desired), current.snapshot, desired.snapshot, dt.date(2026, 6, 1))
        yield plan, copy, declared, current, desired, config


def test_the_plan_reaches_the_declared_state_and_the_reverse_leads_back(stage):
    plan, copy, declared, current, desired, config = stage
    rehearsal = rehearse(plan, copy, declared, current, desired, config)
    assert rehearsal.converged
    assert rehearsal.reverse is not None and rehearsal.reverse_problem is None
    assert any("drop table" in s.sql.lower() for s in rehearsal.reverse.statements)
    # forward on the copy, back on the declared database: each is now where its run leads
    assert read_snapshot(copy.url, config.scope).fingerprint == desired.snapshot.fingerprint
    assert read_snapshot(declared.url, config.scope).fingerprint == current.snapshot.fingerprint
    # converged is judged by the snapshot alone; migra, diffing again, finds nothing either
    assert rehearsal.remaining_statements == ()
    assert diff(inspect_database(copy.url, config.scope), desired).statements == ()


def test_a_reverse_that_fails_is_not_kept_and_says_why(stage, sql):
    plan, copy, declared, current, desired, config = stage
    # Something outside the plan's knowledge that makes dropping the new column fail.
    sql(declared.url, "CREATE VIEW uses_email AS SELECT email FROM account")
    rehearsal = rehearse(plan, copy, declared, current, desired, config)
    assert rehearsal.converged  # the forward plan is unaffected
    assert rehearsal.reverse is None
    assert rehearsal.reverse_problem.startswith("the reverse plan fails on the declared state: rollback rehearsal: statement ")
    assert "depend" in rehearsal.reverse_problem
    # the failed way back was rolled back: the declared database is as it was
    assert ("view", "public.uses_email") in read_snapshot(declared.url, config.scope).objects


def test_a_plan_that_does_not_converge_keeps_no_reverse(stage):
    plan, copy, declared, current, desired, config = stage
    short = dataclasses.replace(plan, statements=plan.statements[:-1])  # one statement left out
    rehearsal = rehearse(short, copy, declared, current, desired, config)
    assert not rehearsal.converged
    assert rehearsal.reverse is None
    # what still differs, and what migra would still do about it (the plan's error lists both)
    left_out = plan.statements[-1].sql
    assert [d.describe() for d in rehearsal.remaining_differences] != []
    assert [s for s in rehearsal.remaining_statements if s.lower().split()[:2] == left_out.lower().split()[:2]] != []
