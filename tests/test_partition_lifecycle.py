"""Partition lifecycle through the command line: a rolling window with rows in it, expiry by detach
(nothing lost) or drop (gated, counted), drift of its own kind, and `maintain` for cron."""

SPEC = "partitions/aggregated_analytics.yaml"


def one(sql, url, query):
    return sql(url, query)[0][0]


def insert_rows(sql, url, years, per_year=2, day="03-01"):
    sql(url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org') ON CONFLICT DO NOTHING")
    for year in years:
        for _ in range(per_year):
            sql(url, "INSERT INTO aggregated_analytics (organization_id, user_role, period_start, period_end) "
                     "VALUES ('o1', 'learner', %s, %s)", (f"{year}-{day}", f"{year}-12-31"))


def add_nickname(project):
    """Declare a new column on users: a plan besides the partitions."""
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace(
        "created_at       timestamptz NOT NULL DEFAULT now()\n);",
        "created_at       timestamptz NOT NULL DEFAULT now(),\n    nickname         text\n);",
    ))


def plan_and_apply(cli, as_of, *apply_args):
    code, out, err = cli("plan", "--as-of", as_of)
    assert code == 0, err
    code, _, err = cli("apply", *apply_args)
    assert code == 0, err
    return out


def test_rolling_window_detaches_expired_partitions_and_keeps_every_row(cli, target_url, sql):
    plan_and_apply(cli, "2025-06-01")
    insert_rows(sql, target_url, range(2019, 2027))
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics") == 16

    out = plan_and_apply(cli, "2026-01-02")

    assert "detach partition public.aggregated_analytics_2019 (2 rows)" in out
    assert "create partition public.aggregated_analytics_2027" in out
    assert "-- destructive: none" in out
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics") == 14
    assert one(sql, target_url, "SELECT count(*) FROM archive.aggregated_analytics_2019") == 2
    assert cli("drift", "--as-of", "2026-01-02")[0] == 0

    out = plan_and_apply(cli, "2033-01-02")  # seven years at once

    detaches = [line for line in out.splitlines() if line.startswith("alter table") and "detach partition" in line]
    assert len(detaches) == 7
    assert one(sql, target_url, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'aggregated_analytics'::regclass") == 8
    archived = one(sql, target_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'archive'")
    assert archived == 8
    total = sum(one(sql, target_url, f"SELECT count(*) FROM archive.aggregated_analytics_{y}") for y in range(2019, 2027))
    assert total == 16  # nothing lost
    assert cli("drift", "--as-of", "2033-01-02")[0] == 0


def test_expire_drop_is_destructive_counted_and_gated(cli, project, target_url, sql):
    (project / SPEC).write_text("table: aggregated_analytics\ncolumn: period_start\nexpire: drop\n")
    plan_and_apply(cli, "2025-06-01")
    insert_rows(sql, target_url, [2019, 2020], per_year=3)

    code, out, err = cli("plan", "--as-of", "2026-01-02")
    assert code == 0, err
    assert "drop table public.aggregated_analytics_2019 (3 rows)  [DESTRUCTIVE]" in out

    code, _, err = cli("apply")
    assert code == 1 and "destructive" in err
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics") == 6

    assert cli("apply", "--allow-destructive")[0] == 0
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics") == 3
    assert one(sql, target_url, "SELECT to_regclass('aggregated_analytics_2019') IS NULL")


def test_drift_names_a_missing_upcoming_partition(cli, target_url):
    plan_and_apply(cli, "2025-06-01")

    code, out, _ = cli("drift", "--as-of", "2026-01-02")

    assert code == 2
    assert "partition public.aggregated_analytics_2027 missing, needed from 2027-01-01" in out


def test_maintain_creates_upcoming_partition_moving_rows_out_of_default(cli, project, target_url, sql):
    (project / SPEC).write_text("table: aggregated_analytics\ncolumn: period_start\ndefault_partition: true\n")
    plan_and_apply(cli, "2025-06-01")
    insert_rows(sql, target_url, [2027], per_year=4)  # no 2027 partition yet: they land in DEFAULT
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics_default") == 4

    code, out, _ = cli("drift", "--as-of", "2026-01-02")
    assert code == 2
    assert "4 row(s) in public.aggregated_analytics_default belong in public.aggregated_analytics_2027" in out

    code, out, err = cli("maintain", "--as-of", "2026-01-02")

    assert code == 0, err
    assert "created 1 partition(s): aggregated_analytics_2027, moving 4 row(s) out of the DEFAULT partition" in out
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics_2027") == 4
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics_default") == 0
    assert one(sql, target_url, "SELECT count(*) FROM reconcile.history WHERE plan_file LIKE 'maintain %'") == 1
    code, out, _ = cli("drift", "--as-of", "2026-01-02")
    assert "missing" not in out and "belong in" not in out and "Changed outside reconcile" not in out
    # Expiring 2019 is left to a reviewed plan: that is the remaining drift.
    assert code == 2 and "table public.aggregated_analytics_2019: only in target" in out

    code, out, _ = cli("maintain", "--as-of", "2026-01-02")
    assert code == 0 and "Nothing to do" in out


def test_maintain_refuses_after_an_out_of_band_change(cli, target_url, sql):
    plan_and_apply(cli, "2025-06-01")
    sql(target_url, "CREATE TABLE sneaky (id int)")

    code, _, err = cli("maintain", "--as-of", "2026-01-02")

    assert code == 1 and "changed outside reconcile" in err
    assert one(sql, target_url, "SELECT to_regclass('aggregated_analytics_2027') IS NULL")


def test_maintain_refuses_while_plans_are_pending(cli, project, target_url, sql):
    plan_and_apply(cli, "2025-06-01")
    add_nickname(project)
    assert cli("plan", "--as-of", "2025-06-01")[0] == 0

    code, _, err = cli("maintain", "--as-of", "2026-01-02")

    assert code == 1 and "waiting to be applied" in err and "run 'reconcile apply' first" in err
    assert one(sql, target_url, "SELECT to_regclass('aggregated_analytics_2027') IS NULL")


def test_maintain_detaches_expired_partitions_when_the_spec_opts_in(cli, project, target_url, sql):
    (project / SPEC).write_text("table: aggregated_analytics\ncolumn: period_start\nauto_detach: true\n")
    plan_and_apply(cli, "2025-06-01")
    insert_rows(sql, target_url, [2019, 2020], per_year=2)

    code, out, err = cli("maintain", "--as-of", "2027-01-02")

    assert code == 0, err
    assert "created 2 partition(s): aggregated_analytics_2027, aggregated_analytics_2028" in out
    assert "detached 2 expired partition(s) into the archive schema, rows kept: aggregated_analytics_2019, " \
           "aggregated_analytics_2020" in out
    assert one(sql, target_url, "SELECT count(*) FROM archive.aggregated_analytics_2019") == 2
    assert one(sql, target_url, "SELECT count(*) FROM archive.aggregated_analytics_2020") == 2
    assert cli("drift", "--as-of", "2027-01-02")[0] == 0


def test_rolling_back_an_expiry_reattaches_the_archived_partition_with_its_rows(cli, project, target_url, sql):
    plan_and_apply(cli, "2025-06-01")
    insert_rows(sql, target_url, range(2019, 2027))
    out = plan_and_apply(cli, "2026-01-02")  # 2019 detached into archive, 2027 created
    assert "(rehearsed: leads back exactly)" in out
    reverse = sorted((project / "migrations" / "rollback").glob("*.sql"))[-1].read_text()
    assert "partitions.reattach-archived" in reverse
    assert "ALTER TABLE archive.aggregated_analytics_2019 SET SCHEMA public;" in reverse

    code, out, err = cli("rollback", "--allow-destructive")  # it drops the (empty) 2027 partition

    assert code == 0, err
    assert one(sql, target_url, "SELECT to_regclass('archive.aggregated_analytics_2019') IS NULL")
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics_2019") == 2  # back, with its rows
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics") == 16
    assert one(sql, target_url, "SELECT to_regclass('aggregated_analytics_2027') IS NULL")

    code, out, err = cli("apply")  # the plan, applied again, archives it again: no name taken

    assert code == 0, err
    assert one(sql, target_url, "SELECT count(*) FROM archive.aggregated_analytics_2019") == 2
    assert cli("drift", "--as-of", "2026-01-02")[0] == 0


def test_a_plan_is_rolled_back_after_maintain_keeping_maintains_partitions(cli, project, target_url, sql):
    plan_and_apply(cli, "2025-06-01")
    add_nickname(project)
    plan_and_apply(cli, "2025-06-01")
    assert cli("maintain", "--as-of", "2026-01-02")[0] == 0  # creates the 2027 partition
    insert_rows(sql, target_url, [2027], per_year=3)

    code, out, err = cli("rollback", "--allow-destructive")

    assert code == 0, err
    assert "'reconcile maintain' ran 1 time(s) since" in out
    assert one(sql, target_url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                                "AND column_name = 'nickname'") == 0
    assert one(sql, target_url, "SELECT count(*) FROM aggregated_analytics_2027") == 3  # maintain's, kept
    rolled = one(sql, target_url, "SELECT count(*) FROM reconcile.history WHERE rolled_back_at IS NOT NULL")
    assert rolled == 1

    # Anything else changed since the plan: refused, nothing rolled back.
    assert cli("apply", "--allow-destructive")[0] == 1  # the plan no longer starts where the target is
    sql(target_url, "CREATE TABLE sneaky (id int)")
    code, out, err = cli("rollback", "--allow-destructive")
    assert code == 1 and "nothing was rolled back" in err
