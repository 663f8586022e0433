"""The desired-state cache: used when nothing it depends on changed, never when something did."""

import dataclasses
import datetime as dt
import json
import shutil

import psycopg2
import pytest

from reconcile_engine.scratch.desired_cache import DesiredStateCache, cache_key, scratch_server_version
from reconcile_engine.config import load_config
from reconcile_engine.declared.files import load_desired_state
from reconcile_engine.inspection.snapshot import read_snapshot
from reconcile_engine.scratch.target_environment import privileges_digest
from reconcile_engine.servers import Target

AS_OF = "2026-06-01"


def drift(cli, *extra, as_of=AS_OF):
    code, out, err = cli("drift", "--as-of", as_of, "--format", "json", *extra)
    assert code in (0, 2), err
    return code, json.loads(out)


def described(report):
    return [d["description"] for d in report["differences"]]


@pytest.fixture
def in_sync(cli):
    """The shipped project planned and applied; planning cached its desired state."""
    assert cli("plan", "--as-of", AS_OF)[0] == 0
    assert cli("apply")[0] == 0


def cache_entries(project):
    return sorted((project / ".reconcile" / "cache").glob("desired-*.json"))


def real_key(project, target_url, as_of=AS_OF):
    config = load_config(project)
    desired = load_desired_state(config, dt.date.fromisoformat(as_of))
    return config, desired, cache_key(desired, config, scratch_server_version(config, Target(target_url)),
                                      privileges_digest(config, target_url))


def test_in_sync_drift_is_answered_from_the_cache_and_agrees_with_a_build(cli, project, in_sync):
    code, cached = drift(cli)
    assert code == 0 and cached["declared_state"] == "cached" and cached["in_sync"]
    code, built = drift(cli, "--no-cache")
    assert code == 0 and built["declared_state"] == "built"
    assert {k: v for k, v in built.items() if k != "declared_state"} == \
        {k: v for k, v in cached.items() if k != "declared_state"}
    assert len(cache_entries(project)) == 1


def test_a_changed_declared_file_is_never_served_from_the_cache(cli, project, target_url, in_sync, sql):
    before = read_snapshot(target_url, load_config(project).scope).fingerprint
    path = project / "schema" / "020_users.sql"
    path.write_text(path.read_text() + "\nALTER TABLE users ADD COLUMN nickname text;\n")
    code, report = drift(cli)
    assert code == 2 and report["declared_state"] == "built"
    assert "column public.users.nickname: only in declared" in described(report)
    assert any("nickname" in statement for statement in report["fix_sql"])
    assert read_snapshot(target_url, load_config(project).scope).fingerprint == before  # drift changes nothing
    assert len(cache_entries(project)) == 2


def test_a_changed_as_of_date_is_never_served_from_the_cache(cli, in_sync):
    assert drift(cli)[1]["declared_state"] == "cached"
    code, report = drift(cli, as_of="2027-06-01")  # a new year: the window moves by one partition
    assert code == 2 and report["declared_state"] == "built"
    assert any("aggregated_analytics_2028" in d for d in described(report))


def test_an_entry_for_another_server_version_is_not_used(cli, project, target_url, in_sync, sql):
    """A poisoned entry (it claims the declared state is the target as altered behind the repo's back)
    is believed under this server's key, which shows the cache is consulted, and ignored under the key of
    another server version, which shows the version is part of the key."""
    config, desired, key = real_key(project, target_url)
    sql(target_url, "DROP INDEX learner_analytics_organization_id_idx")
    altered = read_snapshot(target_url, config.scope)
    other = cache_key(desired, config, "PostgreSQL 99.0 on x86_64-pc-linux-gnu")
    assert other != key
    cache = DesiredStateCache.for_project(config)
    for entry in cache_entries(project):
        entry.unlink()
    cache.put(other, altered, ())
    code, report = drift(cli)
    assert code == 2 and report["declared_state"] == "built"
    assert "index public.learner_analytics_organization_id_idx: only in declared" in described(report)

    # Control: under this server's own key the same entry is believed, so the key is what kept it out.
    cache.put(key, altered, ())
    code, report = drift(cli)
    assert report["declared_state"] == "cached" and report["differences"] == []
    # The cache is trusted to say what the declared files are (its key is what keeps a stale entry out):
    # in sync with them; that the target changed since the last apply still shows.
    assert code == 0 and report["in_sync"] and report["changed_outside_reconcile"]


def test_a_damaged_entry_counts_as_missing(cli, project, in_sync):
    (entry,) = cache_entries(project)
    text = json.loads(entry.read_text())
    text["objects"] = text["objects"][1:]  # no longer matches its recorded fingerprint
    entry.write_text(json.dumps(text))
    code, report = drift(cli)
    assert code == 0 and report["declared_state"] == "built"
    entry.write_text("{not json")
    code, report = drift(cli)
    assert code == 0 and report["declared_state"] == "built"


def test_an_unwritable_cache_is_no_error(cli, project, in_sync):
    shutil.rmtree(project / ".reconcile" / "cache")  # its entries, and the declared files' memo (memo.py)
    (project / ".reconcile" / "cache").write_text("not a folder")
    code, report = drift(cli)
    assert code == 0 and report["declared_state"] == "built" and report["in_sync"]
    code, report = drift(cli)
    assert report["declared_state"] == "built"


def test_plan_in_sync_answers_from_the_cache_but_data_steps_still_plan(cli, project, in_sync, tmp_path):
    code, out, _ = cli("plan", "--as-of", AS_OF, "--dry-run")
    assert code == 0 and "No changes" in out
    step = tmp_path / "backfill.sql"
    step.write_text("UPDATE users SET email = email WHERE false;\n")
    code, out, err = cli("plan", "--as-of", AS_OF, "--dry-run", "--data-after", str(step))
    assert code == 0, err
    assert "UPDATE users SET email" in out


def test_the_key_covers_every_input(project, target_url):
    config, desired, key = real_key(project, target_url)
    version = scratch_server_version(config, Target(target_url))
    digest = privileges_digest(config, target_url)
    assert cache_key(desired, config, version, digest) == key  # stable
    later = load_desired_state(config, dt.date(2026, 6, 2))
    edited = dataclasses.replace(desired, sources=desired.sources[:-1])
    variants = [
        cache_key(later, config, version),
        cache_key(edited, config, version),
        cache_key(desired, config, version + " "),
        cache_key(desired, dataclasses.replace(config, roles=config.roles + ("auditor",)), version),
        cache_key(desired, dataclasses.replace(config, extensions=("pgcrypto",)), version),
        cache_key(desired, dataclasses.replace(config, managed_schemas=("public", "audit")), version),
        cache_key(desired, dataclasses.replace(config, privileges=not config.privileges), version),
        cache_key(desired, dataclasses.replace(config, ignore=("public._prisma_migrations",)), version),
        cache_key(desired, dataclasses.replace(config, external_schemas=("auth",)), version),
        cache_key(desired, config, version, "another target's default privileges"),
    ]
    assert key not in variants and len(set(variants)) == len(variants)


def test_each_scratch_mode_keys_by_the_server_that_would_build(project, target_url, pg_server_url):
    config = load_config(project)
    on_target = scratch_server_version(config, Target(target_url))
    assert on_target.startswith("PostgreSQL ")
    elsewhere = dataclasses.replace(config, scratch_mode="server", scratch_server_url=pg_server_url)
    assert scratch_server_version(elsewhere, Target(target_url)) == on_target  # the same server here
    embedded = dataclasses.replace(config, scratch_mode="embedded")
    version = scratch_server_version(embedded, Target(target_url))  # read from the binaries, not started
    assert version.startswith("embedded postgres (PostgreSQL) 18")


def test_a_plan_reads_the_target_once_when_the_cached_state_differs_from_it(project, target_url, monkeypatch):
    """Planning the same files again: the cache's lookup reads the target's snapshot (the target differs
    from the cached declared state), and the plan goes on from that read rather than reading it again.
    Drift too. The plan is the same as the first."""
    import reconcile_engine as reconcile
    from reconcile_engine.inspection import snapshot

    loaded = reconcile.load_project(project)
    as_of = dt.date.fromisoformat(AS_OF)
    first = reconcile.plan(loaded, target_url, write=False, as_of=as_of)
    target_database = psycopg2.extensions.parse_dsn(target_url)["dbname"]
    reads = []
    take_snapshot = snapshot.take_snapshot

    def counted(conn, *args, **kwargs):
        reads.append(conn.info.dbname)
        return take_snapshot(conn, *args, **kwargs)

    monkeypatch.setattr(snapshot, "take_snapshot", counted)
    again = reconcile.plan(loaded, target_url, write=False, as_of=as_of)
    assert [s.sql for s in again.plan.statements] == [s.sql for s in first.plan.statements]
    assert reads.count(target_database) == 1, reads
    reads.clear()
    assert not reconcile.drift(loaded, target_url, as_of=as_of).in_sync
    assert reads.count(target_database) == 1, reads
