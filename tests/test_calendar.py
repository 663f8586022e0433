"""One calendar: the default as-of date (which places partition windows) is today in UTC, or in
`timezone:` of reconcile.yaml, never the machine's local date; --as-of takes only YYYY-MM-DD."""

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from zoneinfo import ZoneInfo

import pytest
from conftest import project_tree
from test_cli import AS_OF, REPO, plan_files, table_names

from reconcile_engine.cli import run

# At any instant these two zones' dates differ (UTC+14 and UTC-12): a default taken from the
# machine's local date cannot satisfy both tests below.
EARLIEST_ZONE = "Pacific/Kiritimati"
LATEST_ZONE = "Etc/GMT+12"  # POSIX sign: UTC-12


def _reconcile(project, target_url, *args, tz):
    """The command line in a process of its own whose local time zone is `tz`."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"TZ": tz}
    command = [sys.executable, str(REPO / "reconcile.py"), *args, "--project", str(project),
               "--database-url", target_url]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def _at_the_same_instant(calls):
    """Run the commands concurrently; returns their results in order, and the date in UTC (skips the
    test in the rare second when that date changes while they run)."""
    before = dt.datetime.now(dt.timezone.utc)
    results = [None] * len(calls)

    def call(index):
        results[index] = calls[index]()

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = dt.datetime.now(dt.timezone.utc)
    return results, before, after


def _same_day(before, after, zone):
    day = before.astimezone(zone).date()
    if after.astimezone(zone).date() != day:
        pytest.skip(f"the date in {zone} changed while the commands ran")
    return day


def test_machines_in_the_earliest_and_the_latest_zone_place_the_same_window(project, target_url):
    calls = [lambda tz=tz, command=command: _reconcile(project, target_url, *command, "--format", "json",
                                                       "--no-cache", tz=tz)
             for tz in (EARLIEST_ZONE, LATEST_ZONE)
             for command in (("drift",), ("plan", "--dry-run"))]

    results, before, after = _at_the_same_instant(calls)

    utc_today = _same_day(before, after, dt.timezone.utc)
    assert [r.returncode for r in results] == [2, 0, 2, 0], [r.stderr for r in results]
    as_of = [json.loads(r.stdout)["as_of"] for r in results]
    assert as_of == [utc_today.isoformat()] * 4
    # Not the machines' own dates, which differ from each other at every instant.
    assert before.astimezone(ZoneInfo(EARLIEST_ZONE)).date() != before.astimezone(ZoneInfo(LATEST_ZONE)).date()
    # The window is placed by that date: next year's partition is made ahead (premake: 1).
    drift = json.loads(results[0].stdout)
    assert f"table public.aggregated_analytics_{utc_today.year + 1}: only in declared" in \
        [d["description"] for d in drift["differences"]]
    assert not plan_files(project)


def test_timezone_in_the_config_gives_that_zones_date_on_any_machine(project, target_url):
    config = project / "reconcile.yaml"
    config.write_text(config.read_text() + f"\ntimezone: {EARLIEST_ZONE}\n")
    zone = ZoneInfo(EARLIEST_ZONE)

    [result], before, after = _at_the_same_instant(
        [lambda: _reconcile(project, target_url, "drift", "--format", "json", tz=LATEST_ZONE)])

    day = _same_day(before, after, zone)
    assert result.returncode == 2, result.stderr
    assert json.loads(result.stdout)["as_of"] == day.isoformat()


def test_an_unknown_timezone_is_refused_naming_the_key_and_the_value(cli, project, target_url):
    config = project / "reconcile.yaml"
    config.write_text(config.read_text() + "\ntimezone: Mars/Olympus_Mons\n")
    before = project_tree(project)

    code, out, err = cli("plan")

    assert code == 1, out + err
    assert err.startswith("error: reconcile.yaml: timezone: unknown time zone 'Mars/Olympus_Mons'"), err
    assert "an IANA time zone name such as UTC, Europe/Paris or America/New_York" in err
    assert "Traceback" not in err and out == ""
    assert project_tree(project) == before and table_names(target_url) is None


@pytest.mark.parametrize("value", ["../../etc/passwd", "utc+2", 5])
def test_a_timezone_that_is_no_zone_name_is_refused(cli, project, value):
    config = project / "reconcile.yaml"
    config.write_text(config.read_text() + f"\ntimezone: {value}\n")

    code, out, err = cli("drift")

    assert code == 1
    assert f"error: reconcile.yaml: timezone: unknown time zone {value!r}" in err


@pytest.mark.parametrize("command", ["plan", "drift", "maintain", "pull"])
@pytest.mark.parametrize("date", ["20261126", "2026-W48-4", "2026-11-26T00:00"])
def test_as_of_takes_only_year_month_day(capsys, project, target_url, command, date):
    before = project_tree(project)

    code = run([command, "--as-of", date, "--project", str(project), "--database-url", target_url])

    captured = capsys.readouterr()
    assert code == 1
    assert f"error: argument --as-of: expected a date as YYYY-MM-DD, got '{date}'" in captured.err
    assert captured.out == ""
    assert project_tree(project) == before and table_names(target_url) is None


def test_rehearse_keeps_the_as_of_date_the_plan_recorded(cli, project):
    """A plan made as of another day is rehearsed as of that day (its window), not today."""
    assert cli("plan", "--as-of", "2020-06-01")[0] == 0
    [plan] = plan_files(project)
    text = plan.read_text()
    assert "-- as-of: 2020-06-01" in text and "aggregated_analytics_2021" in text

    code, out, err = cli("rehearse", str(plan))

    assert code == 0, err
    assert "-- as-of: 2020-06-01" in plan.read_text()
    assert cli("apply")[0] == 0
    assert cli("drift", "--as-of", "2020-06-01")[0] == 0
    assert cli("drift", "--as-of", AS_OF)[0] == 2  # a later day moves the window
