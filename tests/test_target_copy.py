"""Stage tests for the rehearsal's copy of the target (rehearsal/target_copy.py): built from the
target's inspection in parts (no pg_dump locking every table at once), equal to the target as our own
snapshot sees it; where migra cannot write an object, copied with pg_dump instead, and said so. And what
a full lock table is answered with (lock_table.py): the setting, and the value that would do."""

import logging

import psycopg2
import pytest

from reconcile_engine.config import load_config
from reconcile_engine.diff.statement_facts import operation
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.inspection.snapshot import read_snapshot
from reconcile_engine.lock_table import LockTable, advice, needed_setting
from reconcile_engine.rehearsal.target_copy import copy_target
from reconcile_engine.runner import PlanStatementFailed, run_statements, runner_facts
from reconcile_engine.scratch.databases import ScratchDatabase
from reconcile_engine.scratch.space import ScratchServer
from reconcile_engine.scratch.schema_dump import _lock_table_message

TARGET = """
CREATE TYPE "Role" AS ENUM ('ADMIN', 'LEARNER');
CREATE TABLE "Organization" (id text PRIMARY KEY, "createdAt" timestamptz NOT NULL DEFAULT now());
CREATE TABLE "User" (id text PRIMARY KEY, "organizationId" text NOT NULL REFERENCES "Organization" (id),
                     role "Role" NOT NULL DEFAULT 'LEARNER', email text UNIQUE);
CREATE INDEX "User_organizationId_idx" ON "User" ("organizationId");
CREATE TABLE events (id bigint NOT NULL, day date NOT NULL, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
ALTER TABLE "User" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "User" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON "User" USING ("organizationId" = current_setting('app.org', true));
CREATE FUNCTION user_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM "User"';
CREATE VIEW admins AS SELECT id FROM "User" WHERE role = 'ADMIN';
CREATE MATERIALIZED VIEW per_org AS SELECT "organizationId", count(*) FROM "User" GROUP BY 1;
CREATE UNIQUE INDEX per_org_idx ON per_org ("organizationId");
COMMENT ON TABLE "User" IS 'people; with a '';'' in it';
"""


def _copy(tmp_path, pg_server_url, target_url, caplog):
    (tmp_path / "schema").mkdir(exist_ok=True)
    config = load_config(tmp_path)
    current = inspect_database(target_url, config.scope)
    with caplog.at_level(logging.INFO, logger="reconcile_engine"), \
            ScratchDatabase(ScratchServer(pg_server_url, True), "rehearsal") as copy:
        copy_target(copy, target_url, current.snapshot, config, lambda: current)
        return read_snapshot(copy.url, config.scope), current.snapshot


def test_the_copy_is_built_from_the_inspection_and_equals_the_target(tmp_path, pg_server_url, target_url, sql, caplog):
    sql(target_url, TARGET)
    copied, target = _copy(tmp_path, pg_server_url, target_url, caplog)
    assert copied.fingerprint == target.fingerprint
    assert ("table", 'public."User"') in target.objects or any(k == "table" for k, _ in target.objects)
    assert not [r for r in caplog.records if "pg_dump" in r.getMessage()]  # no fallback


def test_the_copys_statements_keep_only_what_running_them_reads():
    """Built from the inspection, the copy's statements are only run: of their facts they keep their
    node type (for the inert form of a function or a materialized view) and transaction control, one
    shared object for each, and nothing else of their parse trees."""
    index = operation('CREATE UNIQUE INDEX i ON t ((lower(a))) WHERE b', "migra").facts
    bare = runner_facts(index)
    assert index.index_keys and index.relation == "t"
    assert (bare.node, bare.transaction_control, bare.index_keys, bare.relation) == ("IndexStmt", False, (), None)
    assert bare is runner_facts(operation("CREATE INDEX j ON u (b)", "migra").facts)
    assert runner_facts(operation("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "migra").facts).node \
        == "CreateFunctionStmt"
    assert runner_facts(operation("COMMIT", "migra").facts).transaction_control


def test_the_copys_statements_run_in_parts_cut_at_their_commit_points():
    """Run part by part (each let go once it ran), the copy's statements run as the whole would: in
    order, each part ending at a commit point."""
    from reconcile_engine.rehearsal.target_copy import _cut_at_commits

    statements = [operation(f"CREATE TABLE t{i} (id int)", "migra", commit_after=i % 3 == 2) for i in range(8)]
    parts = _cut_at_commits(statements)
    popped = [parts.pop() for _ in range(len(parts))]
    assert [s for part in popped for s in part] == statements
    assert [len(part) for part in popped] == [3, 3, 2]
    assert all(part[-1].commit_after for part in popped[:-1])
    assert _cut_at_commits([]) == []


def test_a_sub_partitioned_target_is_copied_without_pg_dump(tmp_path, pg_server_url, target_url, sql, caplog):
    # A partition that is itself partitioned (partitions.sub-partitioned writes it PARTITION OF its
    # parent, its bounds, then its own key): the copy needs no pg_dump, which locks every table at once.
    sql(target_url, """
        CREATE TABLE events (id bigint NOT NULL, day date NOT NULL, region text NOT NULL, PRIMARY KEY (id, day, region))
            PARTITION BY RANGE (day);
        CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
            PARTITION BY LIST (region);
        CREATE TABLE events_2026_eu PARTITION OF events_2026 FOR VALUES IN ('eu');
    """)
    copied, target = _copy(tmp_path, pg_server_url, target_url, caplog)
    assert copied.fingerprint == target.fingerprint
    assert ("table", "public.events_2026_eu") in copied.objects
    assert not [r for r in caplog.records if "pg_dump" in r.getMessage()]  # no fallback


def test_a_target_with_range_types_is_copied_without_pg_dump(tmp_path, pg_server_url, target_url, sql, caplog):
    # types.range writes them, before the tables whose columns use them.
    sql(target_url, """
        CREATE TYPE score_range AS RANGE (subtype = float8, subtype_diff = float8mi);
        CREATE TYPE label_range AS RANGE (subtype = text, collation = "C");
        CREATE TABLE scores (id bigint PRIMARY KEY, band score_range NOT NULL, labels label_range);
    """)
    copied, target = _copy(tmp_path, pg_server_url, target_url, caplog)
    assert copied.fingerprint == target.fingerprint
    assert copied.of_kind("range type")["public.score_range"].startswith("subtype = double precision")
    assert not [r for r in caplog.records if "pg_dump" in r.getMessage()]  # no fallback


def test_what_migra_cannot_write_is_copied_with_pg_dump_and_said(tmp_path, pg_server_url, target_url, sql, caplog):
    # An aggregate: migra writes nothing for one, so the copy built from the inspection lacks it.
    sql(target_url, "CREATE TABLE events (id bigint PRIMARY KEY);"
                    "CREATE AGGREGATE score_sum(int4) (sfunc = int4pl, stype = int4);")
    copied, target = _copy(tmp_path, pg_server_url, target_url, caplog)
    assert copied.fingerprint == target.fingerprint
    notes = [r.getMessage() for r in caplog.records if "pg_dump" in r.getMessage()]
    assert len(notes) == 1 and "public.score_sum" in notes[0] and "copying it with pg_dump instead" in notes[0]


def test_a_full_lock_table_names_the_setting_and_the_value(pg_server_url, target_url):
    # 100 statements in one transaction, the first taking more locks than the whole table holds.
    statements = [operation("SELECT pg_advisory_xact_lock(g) FROM generate_series(1, 1000000) g", "test")]
    statements += [operation(f"SELECT {i}", "test") for i in range(99)]
    conn = psycopg2.connect(target_url)
    try:
        with pytest.raises(PlanStatementFailed) as failed:
            run_statements(conn, statements, "apply")
        conn.rollback()
    finally:
        conn.close()
    message = str(failed.value)
    assert "statement 1" in message and "max_locks_per_transaction" in message
    assert "set max_locks_per_transaction to at least " in message
    value = int(message.split("set max_locks_per_transaction to at least ")[1].split()[0])
    assert value > 64  # more than the test server's (default) setting


def test_lock_table_arithmetic():
    table = LockTable(64, 100)
    assert table.slots == 6400
    assert needed_setting(table, 20_000) == 250  # 20,000 x 1.25 / 100
    assert needed_setting(table, 10) == 65  # never below what already failed
    text = advice(None, 20_000, "pg_dump")
    assert "64 x 100 = 6,400" in text and "at least 250" in text


def test_the_pg_dump_message_counts_the_relations(target_url, sql):
    sql(target_url, "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int); CREATE VIEW v AS SELECT 1")
    message = _lock_table_message(target_url, ("public",))
    assert "pg_dump (one lock per table, view and sequence: 3)" in message
    assert "max_locks_per_transaction" in message
