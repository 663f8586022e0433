"""Template layers of the declared state (scratch/layers.py): on a scratch server reconcile owns
(scratch.mode: server here), the first layer (schema/, partitions/) is kept as a template database
keyed by content; a change to a policy builds from it; nothing stale, tampered or forged is ever used."""

import json

import psycopg2
import pytest

from test_check import _scratch_on

from reconcile_engine.config import load_config
from reconcile_engine.connections import with_database
from reconcile_engine.declared.files import load_desired_state
from reconcile_engine.scratch.databases import ScratchDatabase
from reconcile_engine.scratch.layers import LAYER_PREFIX, OWNER_ROLE, LayerStore
from reconcile_engine.scratch.space import scratch_space
from reconcile_engine.servers import Target

AS_OF = "2026-06-01"


def _layer_databases(server_url):
    conn = psycopg2.connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (LAYER_PREFIX + "%",))
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def _records(project, kind="layer"):
    records = sorted((project / ".reconcile" / "cache" / "layers").glob("layer-*.json"))
    return [r for r in records if json.loads(r.read_text())["kind"] == kind]


def _build(project, target_url):
    """The declared state built at its stage, as plan builds it: (fingerprint, built from a layer)."""
    import datetime as dt

    from reconcile_engine.inspection.snapshot import take_snapshot

    config = load_config(project)
    desired = load_desired_state(config, dt.date.fromisoformat(AS_OF))
    with scratch_space(config, Target(target_url)) as server, ScratchDatabase(server, "desired") as scratch:
        scratch.use_layers(LayerStore.for_server(config, server))
        scratch.prepare(config)
        scratch.load_desired(desired)
        conn = scratch.connect()
        try:
            return take_snapshot(conn, config.scope).fingerprint, scratch.made_from_template
        finally:
            conn.close()


@pytest.fixture
def layered(project, pg_server_url, target_url):
    _scratch_on(project, pg_server_url)
    yield project
    for record in _records(project) + _records(project, "state"):  # what the test made on the shared server
        LayerStore(record.parent, pg_server_url, 10).forget(json.loads(record.read_text())["key"])


def test_a_changed_policy_builds_from_the_layer_and_equals_a_full_build(layered, pg_server_url, target_url):
    first, from_layer = _build(layered, target_url)
    assert not from_layer and len(_records(layered)) == 1
    assert len([d for d in _layer_databases(pg_server_url) if d.endswith(json.loads(_records(layered)[0].read_text())["key"][:24])]) == 1
    again, from_layer = _build(layered, target_url)
    assert from_layer and again == first

    policy = layered / "policies" / "organizations.sql"
    policy.write_text(policy.read_text().replace("USING (id = current_setting('app.current_org_id', true))",
                                                 "USING (id = current_setting('app.current_org_id', true) AND true)"))
    changed, from_layer = _build(layered, target_url)
    assert from_layer and changed != first
    record = _records(layered)[0]
    record.unlink()  # no layer: the same files built from nothing
    assert _build(layered, target_url) == (changed, False)


def test_a_changed_table_is_never_built_from_the_old_layer(layered, target_url):
    _build(layered, target_url)
    table = layered / "schema" / "010_organizations.sql"
    table.write_text(table.read_text() + "\nCREATE TABLE layer_probe (id int PRIMARY KEY);\n")
    changed, from_layer = _build(layered, target_url)
    assert not from_layer
    assert len(_records(layered)) == 2  # its own layer, beside the old one
    assert _build(layered, target_url) == (changed, True)


def test_a_tampered_layer_is_dropped_and_the_state_built_from_the_files(layered, pg_server_url, target_url):
    first, _ = _build(layered, target_url)
    database = json.loads(_records(layered)[0].read_text())["database"]
    conn = psycopg2.connect(with_database(pg_server_url, database))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE public.planted (id int)")
    conn.close()
    assert _build(layered, target_url) == (first, False)
    assert _build(layered, target_url) == (first, True)  # made again, from the files


def test_a_layer_whose_template_cannot_be_read_is_never_trusted(layered, pg_server_url, target_url):
    """The template is checked on its own connection while the rest is loaded on its copy: one that
    cannot be read (connections to it refused, here) is not taken on trust; the declared state is built
    from the files, and the layer made again."""
    first, _ = _build(layered, target_url)
    database = json.loads(_records(layered)[0].read_text())["database"]
    conn = psycopg2.connect(pg_server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    conn.close()
    assert _build(layered, target_url) == (first, False)
    assert _build(layered, target_url) == (first, True)  # made again, from the files, and readable


@pytest.mark.parametrize("forged", [
    {"pending_stubs": [["x", "DROP DATABASE postgres", "DROP DATABASE postgres"]]},
    {"database": "postgres"},
    {"database": LAYER_PREFIX + "x'; DROP DATABASE postgres; --"},
    {"defaults_set": ["1; DROP"]},
])
def test_a_forged_record_is_never_followed(layered, pg_server_url, target_url, forged):
    first, _ = _build(layered, target_url)
    record = _records(layered)[0]
    record.write_text(json.dumps(json.loads(record.read_text()) | forged))
    assert _build(layered, target_url)[0] == first
    assert "postgres" in [row for row in _all_databases(pg_server_url)]


def _all_databases(server_url):
    conn = psycopg2.connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def _checkpoints_requested(server_url) -> int:
    """Checkpoints the server was asked for (each DROP DATABASE asks for one and waits for it)."""
    conn = psycopg2.connect(server_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version_num')::int")
            if cur.fetchone()[0] >= 170000:
                cur.execute("SELECT num_requested FROM pg_stat_checkpointer")
            else:
                cur.execute("SELECT checkpoints_req FROM pg_stat_bgwriter")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_plan_after_a_policy_change_through_the_command_line(layered, cli, pg_server_url, target_url):
    assert cli("plan")[0] == 0
    assert cli("apply")[0] == 0
    policy = layered / "policies" / "organizations.sql"
    policy.write_text(policy.read_text().replace("WITH CHECK (id = current_setting('app.current_org_id', true))",
                                                 "WITH CHECK (id = current_setting('app.current_org_id', true) AND true)"))
    checkpoints = _checkpoints_requested(pg_server_url)
    code, out, err = cli("plan", "--dry-run", "--format", "json")
    # No database made empty only to be dropped, none dropped: the copy took over the kept state, the
    # declared state came from the layer's template, and both were kept.
    assert _checkpoints_requested(pg_server_url) == checkpoints
    assert code == 0, err
    plan = json.loads(out)
    sql = " ".join(s["sql"] for s in plan["statements"])
    assert "org_isolation" in sql and "AND true" in sql
    assert len(_records(layered)) == 1  # the tables layer of the first plan served the second
    # Kept states: the first plan's declared state, its reverse plan run (the empty target); its copy,
    # rehearsed (the target once applied), which the dry run took over; the dry run's copy, rehearsed
    # (the target once this plan is applied), and its declared state, which its reverse plan led back
    # to the target (the target as it is still).
    assert len(_records(layered, "state")) == 3
    kept = {json.loads(record.read_text())["database"] for record in _records(layered)}
    kept |= {json.loads(record.read_text())["database"] for record in _records(layered, "state")}
    databases = _all_databases(pg_server_url)
    assert len(kept) == 4 and kept <= set(databases)
    assert not [name for name in databases if name.startswith("reconcile_scratch_")]  # nothing else of the runs is left
    checkpoints = _checkpoints_requested(pg_server_url)
    code, out, err = cli("plan", "--dry-run", "--format", "json", "--verbose")
    assert code == 0 and json.loads(out)["statements"] == plan["statements"], err
    assert len(_records(layered, "state")) == 3  # the same states, taken over and kept again
    # The same files planned again: the declared state is the kept one the first dry run's copy reached
    # (the desired-state cache knows its fingerprint), taken over rather than built from the layer, and
    # so nothing is made, and nothing dropped.
    assert _checkpoints_requested(pg_server_url) == checkpoints
    assert "took over a kept state of the declared state" in err
    conn = psycopg2.connect(pg_server_url)
    try:
        with conn.cursor() as cur:  # the owner of the layers stays, with no rights of its own
            cur.execute("SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
                        (OWNER_ROLE,))
            assert cur.fetchone() == (False, False, False, False)
    finally:
        conn.close()


def test_a_layer_unused_for_a_week_is_dropped_by_the_next_build(layered, pg_server_url, target_url):
    _build(layered, target_url)
    database = json.loads(_records(layered)[0].read_text())["database"]
    conn = psycopg2.connect(pg_server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'COMMENT ON DATABASE "{database}" IS %s', (json.dumps({"reconcile_layer_used": "2026-01-01T00:00:00+00:00"}),))
        cur.execute("CREATE DATABASE reconcile_layer_nocomment TEMPLATE template0")  # says nothing: left alone
    conn.close()
    table = layered / "schema" / "010_organizations.sql"
    table.write_text(table.read_text() + "\nCREATE TABLE layer_probe (id int PRIMARY KEY);\n")
    _build(layered, target_url)
    remaining = _layer_databases(pg_server_url)
    assert database not in remaining and "reconcile_layer_nocomment" in remaining
    conn = psycopg2.connect(pg_server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE reconcile_layer_nocomment")
    conn.close()


def _kept_copy_then_copy_again(project, pg_server_url, target_url, tamper=None):
    """A rehearsal's copy kept at the target's state, then the target copied again with it on hand:
    (copy's fingerprint, target's, whether the kept copy made it)."""
    from reconcile_engine.inspection.migra_view import inspect_database
    from reconcile_engine.inspection.snapshot import read_snapshot
    from reconcile_engine.rehearsal.target_copy import copy_target

    config = load_config(project)
    with scratch_space(config, Target(target_url)) as server:
        layers = LayerStore.for_server(config, server)
        current = inspect_database(target_url, config.scope)
        with ScratchDatabase(server, "rehearsal") as first:
            first.use_layers(layers)
            first.prepare(config)
            copy_target(first, target_url, current.snapshot, config, lambda: current, layers)
            first.keep_as_state(layers, current.snapshot.fingerprint)
        if tamper:
            tamper(layers.database_name(layers.state_key(current.snapshot.fingerprint, server.environment)))
        with ScratchDatabase(server, "rehearsal") as again:
            again.use_layers(layers)
            again.prepare(config)
            copy_target(again, target_url, current.snapshot, config, lambda: current, layers)
            return read_snapshot(again.url, config.scope).fingerprint, current.snapshot.fingerprint, \
                again.made_from_template


def test_a_rehearsed_copy_is_kept_and_copies_the_target_once_it_is_there(layered, cli, pg_server_url, target_url):
    assert cli("plan")[0] == 0 and cli("apply")[0] == 0
    copied, target, from_template = _kept_copy_then_copy_again(layered, pg_server_url, target_url)
    assert from_template and copied == target


def test_a_kept_copy_that_was_changed_is_not_used(layered, cli, pg_server_url, target_url):
    assert cli("plan")[0] == 0 and cli("apply")[0] == 0

    def tamper(database):
        conn = psycopg2.connect(with_database(pg_server_url, database))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DROP POLICY org_isolation ON public.organizations")
        conn.close()

    copied, target, from_template = _kept_copy_then_copy_again(layered, pg_server_url, target_url, tamper)
    assert not from_template and copied == target


def test_a_kept_declared_state_that_was_changed_is_not_used(layered, cli, pg_server_url, target_url):
    """The declared state taken over from a kept copy must show the fingerprint the desired-state cache
    holds for the files; one changed since is not used: the state is built from the files."""
    assert cli("plan")[0] == 0 and cli("apply")[0] == 0
    policy = layered / "policies" / "organizations.sql"
    policy.write_text(policy.read_text().replace("WITH CHECK (id = current_setting('app.current_org_id', true))",
                                                 "WITH CHECK (id = current_setting('app.current_org_id', true) AND true)"))
    code, out, _ = cli("plan", "--dry-run", "--format", "json")
    assert code == 0
    first = json.loads(out)["statements"]
    # the kept state the dry run's copy reached: the declared state (it shows the new policy)
    for entry in [json.loads(r.read_text()) for r in _records(layered, "state")]:
        conn = psycopg2.connect(with_database(pg_server_url, entry["database"]))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_policy WHERE polwithcheck IS NOT NULL "
                        "AND pg_get_expr(polwithcheck, polrelid) LIKE '%AND true%'")
            if cur.fetchone()[0]:
                cur.execute("CREATE TABLE public.planted (id int)")
        conn.close()
    code, out, err = cli("plan", "--dry-run", "--format", "json", "--verbose")
    assert code == 0, err
    assert json.loads(out)["statements"] == first  # no DROP TABLE planted: built from the files
    assert "does not show the catalog it was kept with: built again" in err
