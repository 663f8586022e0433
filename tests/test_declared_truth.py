"""The declared files are the truth: a target changed by hand to exactly what they say is in sync (drift
0, plan no changes, maintain proceeds), however it got there; the last apply's fingerprint only informs."""

import datetime as dt
import json

import pytest

from reconcile_engine.config import load_config
from reconcile_engine.declared.files import load_desired_state
from reconcile_engine.errors import StalePlanError
from reconcile_engine.inspection.snapshot import read_snapshot
from reconcile_engine.lifecycle.maintain import maintain_partitions

AS_OF = "2026-06-01"
NEXT_YEAR = "2027-06-01"
INDEX = "CREATE INDEX users_created_at_idx ON users (created_at)"


def one(sql, url, query):
    return sql(url, query)[0][0]


def maintain_runs(sql, url):
    return one(sql, url, "SELECT count(*) FROM reconcile.history WHERE plan_file LIKE 'maintain %'")


def reconciled_by_hand(cli, project, sql, target_url):
    """The shipped project applied, then an index made in a dashboard and declared afterwards."""
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, INDEX)
    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 2 and "index public.users_created_at_idx: only in target" in out
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text() + f"\n{INDEX};\n")


def test_a_hand_made_change_then_declared_is_reconciled(cli, project, sql, target_url):
    reconciled_by_hand(cli, project, sql, target_url)

    code, out, err = cli("drift", "--as-of", AS_OF, "--format", "json")
    report = json.loads(out)
    assert code == 0, err
    assert report["in_sync"] and report["changed_outside_reconcile"] and not report["security_drift"]
    assert report["fingerprint"] == report["declared_fingerprint"] != report["last_applied_fingerprint"]
    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 0 and out.startswith("In sync") and "matches the declared files: reconciled" in out

    code, out, _ = cli("plan", "--as-of", AS_OF, "--detailed-exitcode")
    assert code == 0
    assert "No changes: the target matches the declared files (it changed since the last apply; " \
           "drift is reconciled)" in out
    code, out, _ = cli("plan", "--as-of", AS_OF, "--format", "json", "--no-cache")  # the same when built
    assert code == 0 and json.loads(out)["changed_since_last_apply"] is True
    assert not list((project / "migrations").glob("*.sql"))[1:]  # nothing written but the first plan

    # maintain, a year on, creates next year's partition: the target matches the declared files but
    # for the partitions the new as-of date moves into (and out of) the window.
    code, out, err = cli("maintain", "--as-of", NEXT_YEAR)
    assert code == 0, err
    assert "created 1 partition(s): aggregated_analytics_2028" in out
    assert one(sql, target_url, "SELECT to_regclass('aggregated_analytics_2028') IS NOT NULL")
    assert maintain_runs(sql, target_url) == 1
    code, out, _ = cli("drift", "--as-of", NEXT_YEAR)
    assert "missing" not in out and "index public.users_created_at_idx" not in out
    assert code == 2 and "table public.aggregated_analytics_2020: only in target" in out  # expiry: a reviewed plan

    # Something undeclared, by hand: maintain refuses and creates nothing.
    sql(target_url, "CREATE TABLE sneaky (id int)")
    code, out, err = cli("maintain", "--as-of", "2028-06-01")
    assert code == 1 and "created" not in out
    assert "does not match the declared files (" in err and "public.sneaky" in err and " and 1 more)" in err
    assert "run 'reconcile drift'" in err
    assert one(sql, target_url, "SELECT to_regclass('aggregated_analytics_2029') IS NULL")
    assert maintain_runs(sql, target_url) == 1


def test_the_next_apply_after_a_reconciled_change_records_its_fingerprint(cli, project, sql, target_url):
    reconciled_by_hand(cli, project, sql, target_url)
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text() + "\nALTER TABLE users ADD COLUMN nickname text;\n")

    code, out, err = cli("plan", "--as-of", AS_OF, "--format", "json")
    assert code == 0, err
    planned = json.loads(out)
    assert [s["summary"] for s in planned["statements"]] == ["alter table public.users: add column nickname"]
    code, _, err = cli("apply")  # checks the live fingerprint against the plan's before, not the history's
    assert code == 0, err

    code, out, _ = cli("drift", "--as-of", AS_OF, "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["in_sync"] and not report["changed_outside_reconcile"]
    assert report["last_applied_fingerprint"] == report["fingerprint"] == planned["fingerprint_after"]


def test_maintain_checks_under_its_lock_that_nothing_changed_since_it_compared(project, sql, target_url, cli):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    config = load_config(project)
    as_of = dt.date.fromisoformat(NEXT_YEAR)
    specs = load_desired_state(config, as_of).partition_specs
    seen = read_snapshot(target_url, config.scope).fingerprint
    sql(target_url, "CREATE INDEX users_created_at_idx ON users (created_at)")  # between check and lock

    with pytest.raises(StalePlanError, match="changed while maintain compared it with the declared files"):
        maintain_partitions(config, target_url, specs, as_of, verified_fingerprint=seen, applied_by="test")
    assert one(sql, target_url, "SELECT to_regclass('aggregated_analytics_2028') IS NULL")
    assert maintain_runs(sql, target_url) == 0
