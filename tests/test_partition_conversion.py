"""Converting a populated table to yearly range partitions in place (correction partitions.convert-in-place):
the shipped `aggregated_analytics` held as a plain table with 200,000 rows over eight years, declared
partitioned, applied while "the application" selects and inserts every 50 ms on a second connection;
killed in the middle of its copy and resumed; and converted back by its rollback. Through the command
line, on a real server."""

import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from app_probe import AppProbe

AS_OF = "2026-06-01"
REPO = Path(__file__).resolve().parent.parent
ROWS = 200_000
SHIPPED_TABLE = REPO / "schema" / "040_aggregated_analytics.sql"
SPEC = REPO / "partitions" / "aggregated_analytics.yaml"
APPLICATION = [
    "SELECT count(*) FROM aggregated_analytics WHERE organization_id = 'o1' AND period_start >= '2026-01-01'",
    "INSERT INTO aggregated_analytics (organization_id, user_role, period_start, period_end) "
    "VALUES ('o1', 'probe', '2026-03-01', '2026-04-01') RETURNING id",
]
RELKIND = "SELECT relkind::text FROM pg_class WHERE oid = 'public.aggregated_analytics'::regclass"
COUNT = "SELECT count(*), count(DISTINCT id) FROM aggregated_analytics"


def _one(sql, url, query):
    return sql(url, query)[0][0]


@pytest.fixture
def plain_with_rows(cli, project, target_url, sql):
    """The shipped schema with aggregated_analytics a plain table, applied, holding ROWS rows dated over
    2020-2027; then the shipped (partitioned) declaration put back and planned. Returns the plan's text."""
    shutil.copy(SHIPPED_TABLE, project / "schema" / SHIPPED_TABLE.name)
    table = project / "schema" / SHIPPED_TABLE.name
    table.write_text(SHIPPED_TABLE.read_text().replace(") PARTITION BY RANGE (period_start);", ");"))
    (project / "partitions" / SPEC.name).unlink()
    assert cli("plan", "--as-of", AS_OF, "--name", "plain")[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
    sql(target_url, f"INSERT INTO aggregated_analytics (organization_id, user_role, period_start, period_end) "
                    f"SELECT 'o1', 'learner', d, d + 30 FROM (SELECT date '2020-01-01' + (g % 2922) AS d "
                    f"FROM generate_series(1, {ROWS}) g) days")
    sql(target_url, "ANALYZE aggregated_analytics")
    shutil.copy(SHIPPED_TABLE, table)
    shutil.copy(SPEC, project / "partitions" / SPEC.name)
    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "partition")
    assert code == 0, err
    return out


def test_the_plan_converts_in_place_with_a_rehearsed_way_back(plain_with_rows):
    out = plain_with_rows
    assert "partitions.convert-in-place" in out
    assert f"insert into reconcile_conversion.aggregated_analytics from public.aggregated_analytics ({ROWS} rows)" in out
    assert "-- reconcile: in batches of 5000 rows" in out
    assert f"drop table public.aggregated_analytics ({ROWS} rows)  [DESTRUCTIVE]" in out
    assert "LOCK TABLE public.aggregated_analytics IN ACCESS EXCLUSIVE MODE" in out
    assert "-- rollback: migrations/rollback/<this file's name> (rehearsed: leads back exactly)" in out
    assert "rehearsed on a copy of" in out and "converged" in out


def test_a_live_table_is_converted_and_back_while_the_application_runs(cli, plain_with_rows, target_url, sql):
    with AppProbe(target_url, APPLICATION, interval=0.05) as probe:
        code, out, err = cli("apply", "--allow-destructive")
    assert code == 0, err
    assert not probe.errors, probe.errors
    assert probe.longest_wait < 1.0, probe.latencies
    inserted = probe.returned[1]
    assert len(inserted) >= 5
    assert _one(sql, target_url, RELKIND) == "p"
    assert sql(target_url, COUNT)[0] == (ROWS + len(inserted), ROWS + len(inserted))
    assert _one(sql, target_url, "SELECT count(*) FROM ONLY aggregated_analytics") == 0  # all in partitions
    found = sql(target_url, "SELECT count(*) FROM aggregated_analytics WHERE id = ANY(%s)", (inserted,))[0][0]
    assert found == len(inserted)  # every row the application wrote during the conversion
    assert _one(sql, target_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'reconcile_conversion'") == 0
    assert cli("drift", "--as-of", AS_OF)[0] == 0

    with AppProbe(target_url, APPLICATION, interval=0.05) as back:
        code, out, err = cli("rollback", "--allow-destructive")
    assert code == 0, err
    assert not back.errors, back.errors
    assert back.longest_wait < 1.0, back.latencies
    total = ROWS + len(inserted) + len(back.returned[1])
    assert _one(sql, target_url, RELKIND) == "r"
    assert sql(target_url, COUNT)[0] == (total, total)


def test_an_apply_killed_during_the_copy_resumes_without_duplicates(cli, project, plain_with_rows, target_url, sql):
    config = project / "reconcile.yaml"
    config.write_text((config.read_text() if config.exists() else "").replace("batch_rows: 5000", "") + "\nbatch_rows: 1000\n")
    for old in (project / "migrations").rglob("*_partition.sql"):
        old.unlink()  # planned again, with small batches, so that the copy is caught half-way
    assert cli("plan", "--as-of", AS_OF, "--name", "partition_small_batches")[0] == 0
    process = subprocess.Popen(
        [sys.executable, str(REPO / "reconcile.py"), "apply", "--allow-destructive", "--project", str(project),
         "--database-url", target_url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    copying = "SELECT count(*) FROM reconcile.progress WHERE NOT done AND resume_after IS NOT NULL"
    deadline = time.monotonic() + 120
    try:
        while not (sql(target_url, "SELECT to_regclass('reconcile.progress') IS NOT NULL")[0][0]
                   and _one(sql, target_url, copying)):
            assert process.poll() is None and time.monotonic() < deadline, "apply never reached its copy"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    sql(target_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE '%reconcile_conversion%'")
    copied = _one(sql, target_url, "SELECT count(*) FROM reconcile_conversion.aggregated_analytics")
    assert 0 < copied < ROWS  # killed half-way
    assert _one(sql, target_url, RELKIND) == "r"  # nothing swapped
    # repair would leave the copy and its mirror trigger behind: refused, nothing recorded.
    code, out, err = cli("repair", "--yes")
    assert code == 1
    assert "its partition conversion did not finish (reconcile_conversion holds the copy of aggregated_analytics" in err
    assert "DROP SCHEMA reconcile_conversion CASCADE" in err
    assert _one(sql, target_url, "SELECT count(*) FROM reconcile.history") == 1

    with AppProbe(target_url, APPLICATION, interval=0.05) as probe:
        code, out, err = cli("apply", "--allow-destructive")
    assert code == 0, err
    assert "resuming" in out and "resuming after key" in out
    assert probe.longest_wait < 1.0, probe.latencies
    total = ROWS + len(probe.returned[1])
    assert _one(sql, target_url, RELKIND) == "p"
    assert sql(target_url, COUNT)[0] == (total, total)  # every row, none twice
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_a_conversion_without_a_primary_key_is_refused_with_the_reason(cli, project, target_url, sql):
    table = project / "schema" / SHIPPED_TABLE.name
    table.write_text(SHIPPED_TABLE.read_text().replace(") PARTITION BY RANGE (period_start);", ");")
                     .replace("    PRIMARY KEY (id, period_start),\n", ""))
    (project / "partitions" / SPEC.name).unlink()
    assert cli("plan", "--as-of", AS_OF, "--name", "plain")[0] == 0 and cli("apply")[0] == 0
    shutil.copy(SHIPPED_TABLE, table)
    shutil.copy(SPEC, project / "partitions" / SPEC.name)
    before = sorted(p.name for p in (project / "migrations").iterdir())

    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "partition")

    assert code == 1
    assert ("public.aggregated_analytics: cannot be converted to partitions in place: the target's table "
            "has no primary key") in err
    assert sorted(p.name for p in (project / "migrations").iterdir()) == before
    assert _one(sql, target_url, RELKIND) == "r"


def test_rows_outside_every_declared_partition_refuse_the_plan_with_their_count(cli, project, target_url, sql):
    table = project / "schema" / SHIPPED_TABLE.name
    table.write_text(SHIPPED_TABLE.read_text().replace(") PARTITION BY RANGE (period_start);", ");"))
    (project / "partitions" / SPEC.name).unlink()
    assert cli("plan", "--as-of", AS_OF, "--name", "plain")[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
    sql(target_url, "INSERT INTO aggregated_analytics (organization_id, user_role, period_start, period_end) "
                    "VALUES ('o1', 'r', '2019-12-31', '2020-01-30'), ('o1', 'r', '2024-05-01', '2024-06-01'), "
                    "('o1', 'r', '2031-01-01', '2031-02-01')")
    shutil.copy(SHIPPED_TABLE, table)
    shutil.copy(SPEC, project / "partitions" / SPEC.name)
    before = sorted(p.name for p in (project / "migrations").iterdir())

    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "partition")

    assert code == 1
    assert "rows outside every declared partition" in err
    assert "2 of 3 rows of public.aggregated_analytics fall outside every declared partition of it" in err
    assert "list them: SELECT * FROM public.aggregated_analytics WHERE NOT (" in err
    assert sorted(p.name for p in (project / "migrations").iterdir()) == before
    assert _one(sql, target_url, RELKIND) == "r"

    # Declared with a DEFAULT partition, they have a home: the plan is made.
    SPEC_WITH_DEFAULT = SPEC.read_text() + "\ndefault_partition: true\n"
    (project / "partitions" / SPEC.name).write_text(SPEC_WITH_DEFAULT)
    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "partition")
    assert code == 0, err
    assert "rows outside every declared partition" not in out


# (A double quote in a partitioned table's name crashes schemainspect's dependency reading, before any of
# reconcile's code: not part of this test.)
HOSTILE = "o'neil $reconcile$; drop table keep"


def test_a_hostile_table_name_is_converted_as_a_name(cli, project, target_url, sql):
    """A quote, a dollar-quote tag and a semicolon in a table's and a column's name stay names in every
    statement the conversion writes (the mirror function's body, the row count's message)."""
    for folder in ("schema", "policies", "views", "partitions"):
        shutil.rmtree(project / folder)
        (project / folder).mkdir()
    name = '"' + HOSTILE.replace('"', '""') + '"'
    column = '"d$reconcile$"'
    (project / "schema" / "010_keep.sql").write_text("CREATE TABLE keep (id int PRIMARY KEY);\n")
    plain = f"CREATE TABLE {name} (id int NOT NULL, {column} date NOT NULL, PRIMARY KEY (id, {column}));\n"
    (project / "schema" / "020_hostile.sql").write_text(plain)
    assert cli("plan", "--name", "plain")[0] == 0 and cli("apply")[0] == 0
    sql(target_url, f"INSERT INTO {name} SELECT g, date '2024-01-01' + g FROM generate_series(1, 500) g")
    (project / "schema" / "020_hostile.sql").write_text(
        plain.replace(");\n", f") PARTITION BY RANGE ({column});\n")
        + f"CREATE TABLE {name[:-1]}_a\" PARTITION OF {name} FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n"
        + f"CREATE TABLE {name[:-1]}_b\" PARTITION OF {name} FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n")

    code, out, err = cli("plan", "--name", "partition")
    assert code == 0, err
    assert "$reconcile_1$" in out  # the body's own dollar-quote tag is not one the names contain
    code, out, err = cli("apply", "--allow-destructive")

    assert code == 0, err
    assert _one(sql, target_url, f"SELECT relkind::text FROM pg_class WHERE oid = to_regclass('{name.replace(chr(39), chr(39) * 2)}')") == "p"
    assert _one(sql, target_url, f"SELECT count(*) FROM {name}") == 500
    assert _one(sql, target_url, "SELECT to_regclass('public.keep') IS NOT NULL")
    assert cli("drift")[0] == 0


def test_views_foreign_keys_and_grants_follow_the_converted_table(cli, project, target_url, sql):
    """What depends on the table is made again on the new one: a view over it, a foreign key that
    references it, and (grants unmanaged) the target's own grant to an application role."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    table = project / "schema" / SHIPPED_TABLE.name
    extra = ("\nCREATE TABLE notes (id int PRIMARY KEY, aggregate_id text NOT NULL, aggregate_start date NOT NULL,\n"
             "    FOREIGN KEY (aggregate_id, aggregate_start) REFERENCES aggregated_analytics (id, period_start));\n")
    table.write_text(SHIPPED_TABLE.read_text().replace(") PARTITION BY RANGE (period_start);", ");") + extra)
    (project / "partitions" / SPEC.name).unlink()
    (project / "views" / "020_recent.sql").write_text(
        "CREATE VIEW recent_aggregates AS SELECT id, period_start FROM aggregated_analytics "
        "WHERE period_start >= '2026-01-01';\n")
    assert cli("plan", "--as-of", AS_OF, "--name", "plain")[0] == 0 and cli("apply")[0] == 0
    sql(target_url, f"CREATE ROLE {role}")
    try:
        sql(target_url, f"GRANT SELECT ON aggregated_analytics TO {role}")
        sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
        sql(target_url, "INSERT INTO aggregated_analytics (id, organization_id, user_role, period_start, period_end) "
                        "SELECT 'a' || g, 'o1', 'r', date '2026-01-01' + g, date '2026-01-01' + g + 1 "
                        "FROM generate_series(1, 300) g")
        sql(target_url, "INSERT INTO notes SELECT g, 'a' || g, date '2026-01-01' + g FROM generate_series(1, 300) g")
        table.write_text(SHIPPED_TABLE.read_text() + extra)
        shutil.copy(SPEC, project / "partitions" / SPEC.name)

        code, out, err = cli("plan", "--as-of", AS_OF, "--name", "partition")
        assert code == 0, err
        code, out, err = cli("apply", "--allow-destructive")

        assert code == 0, err
        assert _one(sql, target_url, RELKIND) == "p"
        assert _one(sql, target_url, "SELECT count(*) FROM recent_aggregates") == 300
        assert _one(sql, target_url, "SELECT confrelid::regclass::text FROM pg_constraint "
                                     "WHERE conrelid = 'notes'::regclass AND contype = 'f'") == "aggregated_analytics"
        assert _one(sql, target_url, f"SELECT has_table_privilege('{role}', 'aggregated_analytics', 'SELECT')")
        assert cli("drift", "--as-of", AS_OF)[0] == 0
    finally:
        sql(target_url, f"DROP OWNED BY {role}")
        sql(target_url, f"DROP ROLE {role}")
