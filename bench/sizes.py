"""Bench points by schema size: N generated tables shaped like the shipped schema; plan, apply and
drift timed beside their floors (psql loading the declared SQL, pg_dump --schema-only, raw migra)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from measure import (
    APPLIED, AS_OF, IN_SYNC, NO_CHANGES, PLANNED, BenchFailure, fresh_db, median_seconds, peak_mb, reconcile,
    settle, sql, timed,
)

POLICY = "org_id = current_setting('app.current_org_id', true)"
ADDED_TABLE = "bench_added"

# Row names, in the order they are printed.
LOAD_PSQL = "psql -f of the declared SQL into a fresh database (floor)"
LOAD_IN_PROCESS = "load declared SQL in-process (reconcile's build, information)"
PLAN_EMPTY = "plan from empty (with rehearsal)"
APPLY = "apply (each on a fresh target)"
PLAN_NON_EMPTY = f"plan on a non-empty target ({ADDED_TABLE} added to the files)"
PLAN_IN_SYNC = "plan, in sync"
DRIFT = "drift, in sync"
DRIFT_NO_CACHE = "drift, in sync, --no-cache (as after a change to the files)"
PG_DUMP = "pg_dump --schema-only (floor)"
MIGRA = "raw migra (target vs desired)"
DRIFT_QUERIES = "drift: queries sent / reads only"
ROWS = (LOAD_PSQL, LOAD_IN_PROCESS, PLAN_EMPTY, APPLY, PLAN_NON_EMPTY, PLAN_IN_SYNC, DRIFT, DRIFT_NO_CACHE,
        PG_DUMP, MIGRA, DRIFT_QUERIES)
RECONCILE_ROWS = (PLAN_EMPTY, APPLY, PLAN_NON_EMPTY, PLAN_IN_SYNC, DRIFT, DRIFT_NO_CACHE)


@dataclasses.dataclass(frozen=True)
class Figure:
    """One cell: a median in seconds and the peak memory over its runs, or a text (a count, a failure)."""

    seconds: float | None = None
    peak_mb: float | None = None
    text: str | None = None
    met: bool | None = None  # for a text: whether it meets its target, where it has one

    @classmethod
    def of(cls, runs):
        return cls(median_seconds(runs), peak_mb(runs))


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


def declared_sql_file(project: Path, into: Path):
    """The declared files as reconcile renders them (partition specs included), in load order, in one
    file for psql; and the declared state itself."""
    from reconcile_engine.config import load_config
    from reconcile_engine.declared.files import load_desired_state

    desired = load_desired_state(load_config(project), dt.date.fromisoformat(AS_OF))
    into.write_text("\n".join(source.sql for source in desired.sources))
    return desired


def psql_load(psql: Path, admin: str, name: str, declared: Path, tables: int):
    """Time psql running the declared SQL into a fresh database; returns its run and the database's URL."""
    url = fresh_db(admin, name)
    # Each statement its own transaction (one transaction would overflow the lock table at 10,000
    # tables), committed without waiting for the disk, as reconcile loads its throwaway databases.
    run = timed([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", declared],
                env={"PGOPTIONS": "-c synchronous_commit=off"})
    made = sql(url, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
                    " AND NOT relispartition")[0][0]
    if made != tables:
        raise BenchFailure(f"psql made {made} tables, the declared files {tables}", run)
    return run, url


def timed_dump(target: str, runs: int) -> Figure:
    """pg_dump --schema-only of the target; at 10,000 tables it needs more locks than a default server's
    lock table holds (max_locks_per_transaction 64): that is a finding, not a reason to stop."""
    from reconcile_engine.servers import pg_dump_path

    dump = [pg_dump_path(), "--schema-only", "--dbname", target]
    try:
        return Figure.of([timed(dump, contains=("CREATE TABLE",)) for _ in range(runs)])
    except BenchFailure as failure:
        if "max_locks_per_transaction" in failure.measured.stderr or "out of shared memory" in failure.measured.stderr:
            return Figure(text="fails (lock table)")
        raise


def bench_size(admin: str, psql: Path, n: int, runs: int, work: Path, log_file: Path, *, large: bool) -> dict:
    """The figures at n tables. large: only the rows of the 10,000-table point (no in-process load,
    apply, plan in sync, raw migra or query count), the target of drift and of the plan on a non-empty
    target being the database psql loaded."""
    project = work / f"n{n}"
    generate(project, n)
    declared = work / f"n{n}.sql"
    desired = declared_sql_file(project, declared)
    figures: dict[str, Figure] = {}

    # Each load is measured right beside a plan, so that both medians see the machine in the same
    # state (on a shared virtual machine, disk speed varies by 2x from one minute to the next).
    loads, in_process, plans, applies = [], [], [], []
    for _ in range(runs):
        if not large:
            in_process.append(_in_process_load(admin, desired))
        load, loaded = psql_load(psql, admin, f"bench_load_{n}", declared, n)
        loads.append(load)
        target = fresh_db(admin, f"bench_target_{n}")
        shutil.rmtree(project / "migrations", ignore_errors=True)
        if large:
            plans.append(timed(reconcile("plan", project, target, "--dry-run"), contains=PLANNED))
        else:  # the plan written here is the one the apply run times
            plans.append(timed(reconcile("plan", project, target), contains=(*PLANNED, "-- wrote migrations")))
            applies.append(timed(reconcile("apply", project, target), contains=APPLIED))
    figures[LOAD_PSQL] = Figure.of(loads)
    if in_process:
        figures[LOAD_IN_PROCESS] = Figure(statistics.median(in_process))
    figures[PLAN_EMPTY] = Figure.of(plans)
    if large:
        target = loaded  # the declared state, as psql made it
    else:
        figures[APPLY] = Figure.of(applies)
        figures[PLAN_IN_SYNC] = Figure.of([timed(reconcile("plan", project, target, "--dry-run"), contains=NO_CHANGES)
                                           for _ in range(runs)])

    # The plan in sync filled the cache; at 10,000 tables (no such plan) the first --no-cache drift does.
    flags = {DRIFT: (), DRIFT_NO_CACHE: ("--no-cache",)}
    for row in (DRIFT_NO_CACHE, DRIFT) if large else (DRIFT, DRIFT_NO_CACHE):
        figures[row] = Figure.of([timed(reconcile("drift", project, target, *flags[row]), contains=IN_SYNC)
                                  for _ in range(runs)])
    figures[PG_DUMP] = timed_dump(target, runs)
    if large:
        with (project / "schema" / "tables.sql").open("a") as tables:
            tables.write(f"CREATE TABLE {ADDED_TABLE} (id bigint PRIMARY KEY, org_id text NOT NULL);\n")
        figures[PLAN_NON_EMPTY] = Figure.of([timed(reconcile("plan", project, target, "--dry-run"),
                                                   contains=(*PLANNED, ADDED_TABLE)) for _ in range(runs)])
    else:
        figures[MIGRA] = _raw_migra(admin, desired, target, runs)
        figures[DRIFT_QUERIES] = drift_queries(admin, target, project, log_file)
    for name in (f"bench_load_{n}", f"bench_target_{n}"):
        sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return figures


def _in_process_load(admin: str, desired) -> float:
    from reconcile_engine.scratch.databases import ScratchDatabase, ScratchServer

    settle()
    started = time.perf_counter()
    with ScratchDatabase(ScratchServer(admin, False), "bench") as db:
        db.load_desired(desired)
    return time.perf_counter() - started


def _raw_migra(admin: str, desired, target: str, runs: int) -> Figure:
    """migra alone between the target and the declared state. Exit 2 is accepted: raw migra finds
    differences where the corrections (README) find none, which is part of what this row shows."""
    from reconcile_engine.scratch.databases import ScratchDatabase, ScratchServer

    with ScratchDatabase(ScratchServer(admin, False), "bench") as desired_db:
        desired_db.load_desired(desired)
        migra = [Path(sys.executable).parent / "migra", "--unsafe",
                 target.replace("postgresql://", "postgresql+psycopg2://"),
                 desired_db.url.replace("postgresql://", "postgresql+psycopg2://")]
        return Figure(median_seconds([timed(migra, expect_exit=(0, 2)) for _ in range(runs)]))


def drift_queries(admin, target, project, log_file: Path) -> Figure:
    """How many statements a no-op drift sends the target, and whether all are plain reads (no lock
    above ACCESS SHARE): read from the server log, with statement logging on for that database only."""
    db = urlsplit(target).path.lstrip("/")
    sql(admin, f'ALTER DATABASE "{db}" SET log_statement = \'all\'')
    start = log_file.stat().st_size
    timed(reconcile("drift", project, target), contains=IN_SYNC)
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
    return Figure(text=f"{len(statements)} / {'yes' if not others else 'NO'}", met=not others)
