"""Data steps outside the DDL's lock window (planning/data_window.py, runner.run_in_batches): a NOT NULL
column added to a table with 200,000 rows and backfilled by a data step is planned as add (nullable),
backfill in batches, then SET NOT NULL; applied while a second connection reads and updates the table
every 50 ms, that connection never waits a second. Through the command line, on a real server."""

from app_probe import AppProbe

AS_OF = "2026-06-01"
ROWS = 200_000
BACKFILL = """UPDATE learner_analytics SET "skillBand" = CASE WHEN (data ->> 'score')::int >= 50 THEN 'high' ELSE 'low' END
WHERE "skillBand" IS NULL;
"""


def _one(sql, url, query):
    return sql(url, query)[0][0]


def test_a_backfill_runs_in_batches_outside_the_ddl_transaction(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
    sql(target_url, "INSERT INTO users (id, email, organization_id) VALUES ('u1', 'u@example.com', 'o1')")
    sql(target_url, f"INSERT INTO learner_analytics (user_id, role_id, user_role, organization_id, data) "
                    f"SELECT 'u1', 'r' || g, 'learner', 'o1', jsonb_build_object('score', g % 100) "
                    f"FROM generate_series(1, {ROWS}) g")
    table = project / "schema" / "030_learner_analytics.sql"
    table.write_text(table.read_text().replace("    created_at       timestamptz NOT NULL DEFAULT now()\n);",
                                               '    created_at       timestamptz NOT NULL DEFAULT now(),\n'
                                               '    "skillBand"      text NOT NULL\n);'))
    (project / "data").mkdir()
    (project / "data" / "skill_band.sql").write_text(BACKFILL)

    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "skill_band", "--data-after", "data/skill_band.sql")

    assert code == 0, err
    add = out.index('ADD COLUMN "skillBand" text;')
    step = out.index("UPDATE learner_analytics SET")
    assert add < step < out.index('set not null', step)  # added nullable, filled, then made NOT NULL
    assert "-- reconcile: in batches of 5000 rows" in out
    assert f"update public.learner_analytics ({ROWS} rows)  [DATA]" in out

    probe_statements = [
        "SELECT count(*) FROM learner_analytics WHERE organization_id = 'o1' AND role_id = 'r{n}'",
        "UPDATE learner_analytics SET user_role = 'busy' WHERE role_id = 'r' || (1 + {n} * 997 % 200000) RETURNING id",
    ]
    with AppProbe(target_url, probe_statements, interval=0.05) as probe:
        code, out, err = cli("apply")

    assert code == 0, err
    assert "rows so far" in out
    assert not probe.errors, probe.errors
    assert probe.longest_wait < 1.0, probe.latencies
    assert probe.rounds >= 5
    assert _one(sql, target_url, 'SELECT count(*) FROM learner_analytics WHERE "skillBand" IS NULL') == 0
    assert _one(sql, target_url, "SELECT count(*) FROM learner_analytics WHERE \"skillBand\" = 'high'") == ROWS // 2
    assert _one(sql, target_url, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'learner_analytics'::regclass "
                                 "AND attname = 'skillBand'")
    assert _one(sql, target_url, "SELECT count(*) FROM reconcile.data_steps") == 1
    assert cli("drift", "--as-of", AS_OF)[0] == 0


def test_a_steps_batch_size_is_changed_in_the_plan_and_rehearsed(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org'), ('o2', 'Other')")
    (project / "data").mkdir()
    (project / "data" / "rename_org.sql").write_text("UPDATE organizations SET name = name || ' (renamed)';\n")
    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "rename", "--data-before", "data/rename_org.sql")
    assert code == 0, err
    path = sorted((project / "migrations").glob("*_rename.sql"))[-1]
    path.write_text(path.read_text().replace("in batches of 5000 rows", "in batches of 1 rows"))
    assert cli("apply")[0] == 1  # edited: refused until rehearsed

    code, out, err = cli("rehearse", str(path))

    assert code == 0, err
    assert "-- reconcile: in batches of 1 rows" in path.read_text()
    code, out, err = cli("apply")
    assert code == 0, err
    assert "statement 1: 1 rows so far" in out  # one row per batch
    assert sql(target_url, "SELECT count(*) FROM organizations WHERE name LIKE '%(renamed)'")[0][0] == 2
