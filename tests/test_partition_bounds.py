"""Changed partition bounds on a table with rows (correction partitions.attachment): every changed
partition is detached and attached again with its declared bounds, in the plan's transaction. Rows a
partition's new bounds would not hold refuse the plan at pre-flight, naming the partition; otherwise the
application, reading and writing the parent every 50 ms, never waits a second. Through the command line."""

import yaml
from app_probe import AppProbe

ROWS = 100_000
TABLE = """CREATE TABLE measurements (id bigint NOT NULL, day date NOT NULL, v int, PRIMARY KEY (id, day))
    PARTITION BY RANGE (day);
CREATE TABLE measurements_a PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('{split}');
CREATE TABLE measurements_b PARTITION OF measurements FOR VALUES FROM ('{split}') TO ('2026-01-01');
"""


def _project(folder, split):
    (folder / "schema").mkdir(parents=True, exist_ok=True)
    (folder / "migrations").mkdir(exist_ok=True)
    (folder / "schema" / "measurements.sql").write_text(TABLE.format(split=split))
    (folder / "reconcile.yaml").write_text(yaml.safe_dump({"managed_schemas": ["public"]}))


def _reconcile(capsys, folder, url, *args):
    from reconcile_engine.cli import run
    code = run([*args, "--project", str(folder), "--database-url", url])
    out, err = capsys.readouterr()
    return code, out, err


def _one(sql, url, query):
    return sql(url, query)[0][0]


def test_changed_bounds_move_no_row_and_rows_outside_them_refuse_the_plan(tmp_path, target_url, sql, capsys):
    folder = tmp_path / "project"
    _project(folder, "2025-07-01")
    assert _reconcile(capsys, folder, target_url, "plan", "--name", "first")[0] == 0
    assert _reconcile(capsys, folder, target_url, "apply")[0] == 0
    # Rows from January to June: with the split moved to April, those from April on leave measurements_a.
    sql(target_url, f"INSERT INTO measurements SELECT g, DATE '2025-01-01' + (g % 181), g FROM generate_series(1, {ROWS}) g")
    _project(folder, "2025-04-01")

    code, out, err = _reconcile(capsys, folder, target_url, "plan", "--name", "split")

    assert code == 1
    assert "rows of public.measurements_a fall outside its bounds" in err, err
    assert not list((folder / "migrations").glob("*_split.sql"))
    assert _one(sql, target_url, "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'measurements_a'") \
        == "FOR VALUES FROM ('2025-01-01') TO ('2025-07-01')"

    # The rows that would not fit are gone: the same change plans and applies under a reading, writing probe.
    sql(target_url, "DELETE FROM measurements WHERE day >= '2025-04-01'")
    remaining = _one(sql, target_url, "SELECT count(*) FROM measurements")
    code, out, err = _reconcile(capsys, folder, target_url, "plan", "--name", "split")
    assert code == 0, err
    assert "detach partition" in out and "attach partition" in out
    probe = ["SELECT count(*) FROM measurements WHERE id = {n}",
             "INSERT INTO measurements VALUES (1000000 + {n}, '2025-02-01', 0) RETURNING id"]
    with AppProbe(target_url, probe, interval=0.05) as app:
        code, out, err = _reconcile(capsys, folder, target_url, "apply")

    assert code == 0, err
    assert not app.errors, app.errors
    assert app.longest_wait < 1.0, app.latencies
    assert _one(sql, target_url, "SELECT count(*) FROM measurements") == remaining + len(app.returned[1])
    assert _one(sql, target_url, "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'measurements_b'") \
        == "FOR VALUES FROM ('2025-04-01') TO ('2026-01-01')"
    assert _reconcile(capsys, folder, target_url, "drift")[0] == 0
