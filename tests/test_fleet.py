"""Fleets (targets: in reconcile.yaml): --target, --all-targets, --shard, --parallel, apply in waves,
and the summary table and JSON document, through the command line on real databases."""

import json
import shutil
import uuid
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import REPO, SHIPPED_PROJECT, _execute, _with_database
from reconcile_engine import fleet, fleet_targets
from reconcile_engine.cli import run
from reconcile_engine.config import TargetSpec, load_config


@pytest.fixture(scope="module")
def planned(tmp_path_factory, pg_server_url):
    """A copy of the shipped project with one plan, from an empty database (so it applies to each fresh
    database below); planned once for the module."""
    folder = tmp_path_factory.mktemp("fleet") / "project"
    folder.mkdir()
    for name in SHIPPED_PROJECT:
        shutil.copytree(REPO / name, folder / name)
    shutil.copy(REPO / "reconcile.yaml", folder / "reconcile.yaml")
    (folder / "migrations").mkdir()
    url = _fresh_database(pg_server_url)
    try:
        assert run(["plan", "--project", str(folder), "--database-url", url]) == 0
    finally:
        _drop(pg_server_url, url)
    assert len(list((folder / "migrations").glob("*.sql"))) == 1
    return folder


@pytest.fixture
def databases(pg_server_url):
    """A factory of fresh databases on the test server, dropped after the test."""
    made = []

    def make():
        made.append(_fresh_database(pg_server_url))
        return made[-1]

    yield make
    for url in made:
        _drop(pg_server_url, url)


def _fresh_database(server_url):
    name = f"rt_fleet_{uuid.uuid4().hex[:10]}"
    _execute(server_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
    return _with_database(server_url, name)


def _drop(server_url, url):
    _execute(server_url, f'DROP DATABASE IF EXISTS "{_name(url)}" WITH (FORCE)')


def _name(url):
    return urlsplit(url).path.lstrip("/")


def _config(project, tmp_path, targets, **more):
    """reconcile.yaml of the project with these targets: (and waves:), written beside the test."""
    config = yaml.safe_load((project / "reconcile.yaml").read_text())
    config |= {"targets": targets, **more}
    path = tmp_path / f"fleet-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _reconcile(capsys, project, config, *args):
    code = run([*args, "--project", str(project), "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def _tables(url):
    return _execute(url, "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'reconcile')")[0][0]


def _names(names):
    return [{"name": name, "url": f"postgresql://app@db-{name}.example.com/app"} for name in names]


# --- shards -----------------------------------------------------------------------------------------


def test_shards_cover_every_target_exactly_once_and_stay_put(project, tmp_path):
    names = [f"tenant-{i:02d}" for i in range(50)]
    config = load_config(project, _config(project, tmp_path, _names(names)))
    for count in (1, 2, 3, 7):
        shards = [_shard(config, i, count) for i in range(1, count + 1)]
        assert sorted(n for shard in shards for n in shard) == sorted(names), count
        if count > 1:
            assert all(shards), f"an empty shard of {count} with 50 targets: the hash does not spread"
    # Another file: one target gone, one added, the order reversed: every target keeps its shard.
    changed = [n for n in reversed(names) if n != "tenant-07"] + ["tenant-new"]
    other = load_config(project, _config(project, tmp_path, _names(changed)))
    for count in (2, 3, 7):
        before = {name: i for i in range(1, count + 1) for name in _shard(config, i, count)}
        after = {name: i for i in range(1, count + 1) for name in _shard(other, i, count)}
        assert all(after[name] == before[name] for name in after if name in before)


def _shard(config, index, count):
    return [t.name for t in fleet_targets.select_targets(config, fleet_targets.Shard(index, count))]


@pytest.mark.parametrize("shard", ["0/3", "4/3", "1/0", "a/b", "1/3/4", "-1/3", "1/ 3", "٣/٣", "", "1/3;drop"])
def test_an_invalid_shard_is_a_usage_error_and_nothing_runs(capsys, project, tmp_path, shard):
    config = _config(project, tmp_path, [{"name": "a", "url_env": "RECONCILE_TEST_FLEET_UNSET"}])
    code, out, err = _reconcile(capsys, project, config, "status", "--all-targets", f"--shard={shard}")
    assert code == 1
    assert out == ""  # no table: no target ran (the one listed would have been an error row)
    assert err.strip().splitlines() == [f"error: --shard: expected I/N with 1 <= I <= N (shard I of N, as in a CI "
                                        f"matrix), got {shard!r}"]


@pytest.mark.parametrize("args, message", [
    (["plan", "--all-targets"], "--all-targets is for drift, status, maintain, apply only, not plan"),
    (["status", "--shard", "1/2"], "--shard needs --all-targets"),
    (["drift", "--parallel", "2"], "--parallel needs --all-targets"),
    (["drift", "--all-targets", "--parallel", "0"], "--parallel: expected a whole number from 1 to 32, got '0'"),
    (["drift", "--all-targets", "--parallel", "33"], "--parallel: expected a whole number from 1 to 32, got '33'"),
    (["drift", "--all-targets", "--parallel=-1;rm"], "--parallel: expected a whole number from 1 to 32, got '-1;rm'"),
    (["drift", "--all-targets", "--target", "a"], "--target and --all-targets each name the target: give one"),
    (["drift", "--all-targets", "--format", "prometheus"], "--format prometheus describes one target"),
    (["status", "--target", "a", "--database-url", "postgresql://x@h/db"],
     "--database-url and --target each name the target: give one"),
    (["status", "--target", "nobody"], "--target: no target named 'nobody' (known: a, b)"),
    (["status", "--target", "a'; DROP TABLE x; --\n"],
     "--target: no target named \"a'; DROP TABLE x; --\\n\" (known: a, b)"),
])
def test_fleet_flags_a_command_cannot_mean_are_usage_errors(capsys, project, tmp_path, args, message):
    config = _config(project, tmp_path, [{"name": "a", "url_env": "RECONCILE_TEST_FLEET_UNSET"},
                                         {"name": "b", "url": "postgresql://app@db.example.com/app"}])
    code, out, err = _reconcile(capsys, project, config, *args)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {message}"), err


def test_all_targets_without_targets_is_a_usage_error(capsys, project):
    code = run(["drift", "--all-targets", "--project", str(project)])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.strip() == ("error: --all-targets: reconcile.yaml lists no targets: add them under targets: (see the "
                           "README's Fleets)")


# --- reconcile.yaml ---------------------------------------------------------------------------------


PLAIN = "targets[1].name: expected letters, digits, '_', '.' or '-', got "


@pytest.mark.parametrize("targets, more, message", [
    (_names(["a", "a"]), {}, "targets[2].name: 'a' names two targets"),
    ([{"name": "a", "url": "postgresql://x@h/db", "url_env": "A_URL"}], {},
     "targets[1]: give exactly one of url and url_env"),
    ([{"name": "a"}], {}, "targets[1]: give exactly one of url and url_env"),
    ([{"name": "a", "url_env": "A_URL", "region": "eu"}], {}, "targets[1]: unknown key 'region'"),
    ([{"name": "a'b", "url_env": "A_URL"}], {}, PLAIN + "\"a'b\""),
    ([{"name": "a\nb", "url_env": "A_URL"}], {}, PLAIN + "'a\\nb'"),
    ([{"name": "../etc", "url_env": "A_URL"}], {}, PLAIN + "'../etc'"),
    ([{"name": "..", "url_env": "A_URL"}], {}, PLAIN + "'..'"),
    ([{"name": "a;b", "url_env": "A_URL"}], {}, PLAIN + "'a;b'"),
    ([{"name": "", "url_env": "A_URL"}], {}, "targets[1].name: expected a non-empty string, got ''"),
    ([{"name": "a", "url_env": "A_URL", "group": "x y"}], {}, "targets[1].group: expected letters, digits"),
    ([{"name": "a", "url_env": "A_URL; rm -rf /"}], {}, "targets[1].url_env: expected an environment variable's name"),
    ({"name": "a"}, {}, "targets: expected a list"),
    (_names(["a"]), {"waves": ["canary", "default"]}, "waves: must name each group of targets: once"),
    (_names(["a"]), {"waves": ["default", "default"]}, "waves: must name each group of targets: once"),
    ([{"name": "a", "url_env": "A_URL", "group": "canary"}, {"name": "b", "url_env": "B_URL"}],
     {"waves": ["canary"]},
     "waves: must name each group of targets: once, in the order apply runs them (groups: canary, default)"),
])
def test_targets_in_reconcile_yaml_are_checked(capsys, project, tmp_path, targets, more, message):
    config = _config(project, tmp_path, targets, **more)
    before = config.read_text()
    code, out, err = _reconcile(capsys, project, config, "status", "--all-targets")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {config.name}: {message}"), err
    assert config.read_text() == before


def test_waves_default_to_canary_first_then_groups_in_order(project, tmp_path):
    targets = [{"name": "a", "url_env": "A_URL", "group": "eu"}, {"name": "b", "url_env": "B_URL"},
               {"name": "c", "url_env": "C_URL", "group": "canary"}, {"name": "d", "url_env": "D_URL", "group": "eu"}]
    assert load_config(project, _config(project, tmp_path, targets)).waves == ("canary", "eu", "default")


# --- on databases -----------------------------------------------------------------------------------


def test_target_selects_a_configured_target_and_its_url_env_is_read_when_used(capsys, planned, tmp_path, databases,
                                                                               monkeypatch):
    url = databases()
    config = _config(planned, tmp_path, [
        {"name": "eu-1", "url_env": "RECONCILE_TEST_FLEET_EU1"},
        {"name": "unset", "url_env": "RECONCILE_TEST_FLEET_UNSET"},
        {"name": "locked", "url": "postgresql://app:s3cret-pw@127.0.0.1:1/app"}])
    monkeypatch.setenv("RECONCILE_TEST_FLEET_EU1", url)
    monkeypatch.delenv("RECONCILE_TEST_FLEET_UNSET", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/not-this-one")  # --target wins

    code, out, err = _reconcile(capsys, planned, config, "status", "--target", "eu-1")
    assert code == 0, err
    assert out.startswith("Target: ") and out.splitlines()[0].endswith(f"/{_name(url)}")
    assert "Pending (1):" in out

    code, out, err = _reconcile(capsys, planned, config, "status", "--target", "unset")
    assert (code, out) == (1, "")
    assert err.strip() == ("error: target unset: the environment variable RECONCILE_TEST_FLEET_UNSET (its URL) "
                           "is not set")

    code, out, err = _reconcile(capsys, planned, config, "status", "--target", "locked")
    assert (code, out) == (1, "")
    assert "s3cret-pw" not in err and "app@127.0.0.1:1/app" in err


def test_apply_in_waves_stops_at_the_first_failing_target(capsys, planned, tmp_path, databases, monkeypatch):
    first, second = databases(), databases()
    monkeypatch.delenv("RECONCILE_TEST_FLEET_UNSET", raising=False)
    broken = {"name": "broken", "url_env": "RECONCILE_TEST_FLEET_UNSET"}

    # The failing target is the canary: the next wave does not run.
    config = _config(planned, tmp_path, [{**broken, "group": "canary"}, {"name": "eu-1", "url": first},
                                         {"name": "eu-2", "url": second}])
    code, out, err = _reconcile(capsys, planned, config, "apply", "--all-targets", "--format", "json")
    assert code == 1, err
    report = json.loads(out)
    assert report["exit_code"] == 1
    assert [(t["name"], t["outcome"], t["summary"]) for t in report["targets"]] == [
        ("broken", "error", "target broken: the environment variable RECONCILE_TEST_FLEET_UNSET (its URL) is not set"),
        ("eu-1", "not run", "not run (wave stopped: broken failed)"),
        ("eu-2", "not run", "not run (wave stopped: broken failed)")]
    assert _tables(first) == 0 and _tables(second) == 0
    assert err == ""  # JSON mode: no progress lines, stdout is the one document

    # A good canary, then a wave whose first target cannot take the plan (its database is not the plan's
    # "before"): with one at a time, the rest of that wave never starts.
    stale = databases()
    _execute(stale, "CREATE TABLE public.users (id int)")
    targets = [{"name": "canary-1", "url": first, "group": "canary"}, {"name": "stale", "url": stale, "group": "rest"},
               {"name": "rest-2", "url": second, "group": "rest"}]
    config = _config(planned, tmp_path, targets, waves=["canary", "rest"])
    code, out, err = _reconcile(capsys, planned, config, "apply", "--all-targets", "--parallel", "1")
    assert code == 1
    rows = out.splitlines()[1:4]
    assert [row.split()[:3] for row in rows] == [["canary-1", "canary", "ok"], ["stale", "rest", "error"],
                                                 ["rest-2", "rest", "not"]]
    assert rows[2].endswith("not run (wave stopped: stale failed)")
    assert out.splitlines()[-1] == "apply: 3 target(s): 1 ok, 1 error, 1 not run; exit 1"
    assert "canary-1: applying " in err  # progress on standard error, named by target
    assert _tables(first) > 0 and _tables(second) == 0
    assert _execute(stale, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass "
                           "AND attnum > 0")[0][0] == 1


def test_drift_across_targets_one_drifted_by_hand(capsys, planned, tmp_path, databases):
    urls = [databases() for _ in range(3)]
    config = _config(planned, tmp_path, [{"name": f"db-{i}", "url": url, "group": "canary" if i == 1 else "eu"}
                                         for i, url in enumerate(urls, 1)])
    code, out, err = _reconcile(capsys, planned, config, "apply", "--all-targets")
    assert code == 0, out + err
    assert [line.split()[2] for line in out.splitlines()[1:4]] == ["ok", "ok", "ok"]

    # The first target builds the declared state alone; the others find it in the cache.
    shutil.rmtree(planned / ".reconcile" / "cache", ignore_errors=True)
    code, out, err = _reconcile(capsys, planned, config, "drift", "--all-targets", "--format", "json")
    assert code == 0, err
    assert [t["result"]["declared_state"] for t in json.loads(out)["targets"]] == ["built", "cached", "cached"]

    _execute(urls[1], "ALTER TABLE public.users ADD COLUMN nickname text")

    code, out, err = _reconcile(capsys, planned, config, "drift", "--all-targets")
    assert code == 2, err
    lines = out.splitlines()
    assert lines[0].split() == ["target", "group", "outcome", "summary"]
    assert [line.split()[:3] for line in lines[1:4]] == [["db-1", "canary", "ok"], ["db-2", "eu", "changes"],
                                                          ["db-3", "eu", "ok"]]
    assert "drift: 1 difference(s)" in lines[2]
    assert lines[-1] == "drift: 3 target(s): 2 ok, 1 changes; exit 2"

    code, out, err = _reconcile(capsys, planned, config, "drift", "--all-targets", "--format", "json")
    assert code == 2
    report = json.loads(out)  # one document
    assert (report["command"], report["exit_code"], report["counts"]) == (
        "drift", 2, {"ok": 2, "changes": 1, "error": 0, "not run": 0})
    drifted = report["targets"][1]
    assert (drifted["name"], drifted["exit_code"], drifted["result"]["in_sync"]) == ("db-2", 2, False)
    assert any("nickname" in d["description"] for d in drifted["result"]["differences"])

    # Two shards of the same targets: each target in exactly one.
    seen = []
    for shard in ("1/2", "2/2"):
        code, out, err = _reconcile(capsys, planned, config, "status", "--all-targets", "--shard", shard,
                                    "--format", "json")
        assert code == 0, err
        seen += [t["name"] for t in json.loads(out)["targets"]]
    assert sorted(seen) == ["db-1", "db-2", "db-3"]

    # maintain refuses the drifted target (its row) and has nothing to do on the others.
    code, out, err = _reconcile(capsys, planned, config, "maintain", "--all-targets", "--format", "json")
    assert code == 1, err
    rows = json.loads(out)["targets"]
    assert [(t["name"], t["outcome"], t["summary"]) for t in rows if t["outcome"] == "ok"] == [
        ("db-1", "ok", "nothing to do"), ("db-3", "ok", "nothing to do")]
    assert rows[1]["name"] == "db-2" and "does not match the declared files" in rows[1]["summary"]
    assert rows[1]["exit_code"] == 1 and "nickname" in rows[1]["error"]


def test_a_target_that_fails_is_its_own_row_with_no_password(capsys, planned, tmp_path, databases):
    url = databases()
    config = _config(planned, tmp_path, [{"name": "good", "url": url},
                                         {"name": "down", "url": "postgresql://app:s3cret-pw@127.0.0.1:1/app"}])
    code, out, err = _reconcile(capsys, planned, config, "status", "--all-targets")
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines()[1:3]}
    assert rows["good"].split()[2] == "ok" and "0 applied, 1 pending" in rows["good"]
    assert rows["down"].split()[2] == "error" and "app@127.0.0.1:1/app" in rows["down"]
    assert "s3cret-pw" not in out + err


def test_an_interrupt_starts_no_further_target_and_propagates():
    started = []
    targets = [TargetSpec(f"t{i}", url="postgresql://x@h/db") for i in range(4)]

    def run_one(target):
        started.append(target.name)
        if target.name == "t1":
            raise KeyboardInterrupt  # as Ctrl-C reaches the main thread while it waits
        return fleet.TargetRow(target.name, target.group, fleet.OK, 0, "ok")

    done = {}
    with pytest.raises(KeyboardInterrupt):
        fleet._pool(targets, run_one, 1, done, stop_at_error=False)
    assert started == ["t0", "t1"]
    assert list(done) == ["t0"]
