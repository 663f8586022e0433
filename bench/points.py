"""Bench points beside the sizes: a changed policy re-planned at 2,500 tables, a cached drift of the
shipped project on its embedded server, and drift across a fleet of databases of the shipped schema."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
from pathlib import Path

from measure import (
    APPLIED, IN_SYNC, PLANNED, REPO, BenchFailure, Measured, fresh_db, median_seconds, peak_mb, reconcile, sql, timed,
)
from sizes import POLICY, generate

SHIPPED = ("schema", "policies", "views", "partitions")


@dataclasses.dataclass(frozen=True)
class Point:
    """One figure of a point, in seconds, with the limit it must stay within."""

    measure: str
    seconds: float
    peak_mb: float
    limit_s: float

    @property
    def met(self) -> bool:
        return self.seconds <= self.limit_s


def shipped_copy(folder: Path) -> Path:
    """The repository's shipped project (its declared folders and reconcile.yaml), without its plans."""
    folder.mkdir(parents=True)
    for sub in SHIPPED:
        shutil.copytree(REPO / sub, folder / sub)
    shutil.copy(REPO / "reconcile.yaml", folder / "reconcile.yaml")
    return folder


def changed_policy(admin: str, n: int, runs: int, work: Path) -> list[Point]:
    """n generated tables planned and applied, with the scratch server one reconcile owns (the bench's);
    then one policy's USING expression changed in policies/ and `plan --dry-run` timed: the first plan
    after the change, then again."""
    project = work / f"policy{n}"
    generate(project, n)
    (project / "reconcile.yaml").write_text(f"scratch:\n  mode: server\n  server_url: {json.dumps(admin)}\n")
    target = fresh_db(admin, "bench_changed_policy")
    timed(reconcile("plan", project, target), contains=PLANNED)
    timed(reconcile("apply", project, target), contains=APPLIED)
    table = f"t{n // 2 // 10 * 10 + 1:05d}"  # a plain table (one in ten, ending in 5, is partitioned)
    policies = project / "policies" / "policies.sql"
    before = f"CREATE POLICY org_isolation ON {table} USING ({POLICY});"
    text = policies.read_text()
    if before not in text:
        raise SystemExit(f"bench bug: {before!r} is not in {policies}")
    policies.write_text(text.replace(before, f"CREATE POLICY org_isolation ON {table} USING "
                                             f"(org_id = current_setting('app.org_id', true));"))
    plan = reconcile("plan", project, target, "--dry-run")
    first = timed(plan, contains=(*PLANNED, table))
    again = [timed(plan, contains=(*PLANNED, table)) for _ in range(runs)]
    sql(admin, 'DROP DATABASE IF EXISTS "bench_changed_policy" WITH (FORCE)')
    return [Point(f"changed policy at {n:,} tables: first plan --dry-run after the change", first.seconds,
                  first.peak_mb, 3.0),
            Point(f"changed policy at {n:,} tables: plan --dry-run again (median of {runs})", median_seconds(again),
                  peak_mb(again), 3.0)]


def cached_drift(runs: int, work: Path) -> list[Point]:
    """The shipped project on its default embedded target: plan, apply, one drift to warm the cache,
    then `drift` timed (as JSON, which says whether the cache answered)."""
    project = shipped_copy(work / "shipped")
    try:
        timed(reconcile("plan", project), contains=PLANNED)
        timed(reconcile("apply", project), contains=APPLIED)
        timed(reconcile("drift", project), contains=IN_SYNC)
        drifts = [timed(reconcile("drift", project, None, "--format", "json"), check=_cached_in_sync)
                  for _ in range(runs)]
    except BaseException:
        with contextlib.suppress(BenchFailure):  # the first failure is the one to report
            _stop_embedded(project)
        raise
    _stop_embedded(project)
    return [Point(f"cached drift of the shipped project, embedded target (median of {runs})",
                  median_seconds(drifts), peak_mb(drifts), 0.3)]


def fleet(admin: str, size: int, runs: int, work: Path) -> list[Point]:
    """`size` databases of the shipped schema on the bench server (one planned and applied, the others
    copies of it), listed under targets: in the project; `drift --all-targets` timed, the first run (the
    plan on the first database filled the desired-state cache) and again."""
    project = shipped_copy(work / "fleet")
    names = [f"bench_fleet_{i:03d}" for i in range(size)]
    try:
        first = fresh_db(admin, names[0])
        timed(reconcile("plan", project, first), contains=PLANNED)
        timed(reconcile("apply", project, first), contains=APPLIED)
        urls = [first] + [fresh_db(admin, name, template=names[0]) for name in names[1:]]
        with (project / "reconcile.yaml").open("a") as config:
            config.write("\ntargets:\n" + "".join(
                f"  - {{name: {json.dumps(name)}, url: {json.dumps(url)}, group: bench}}\n"
                for name, url in zip(names, urls)))
        drift = reconcile("drift", project, None, "--all-targets", "--format", "json")

        def every_target_in_sync(run: Measured) -> str | None:
            return _all_in_sync(run, size)

        cold = timed(drift, check=every_target_in_sync)
        again = [timed(drift, check=every_target_in_sync) for _ in range(runs)]
    finally:
        for name in names:
            sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return [Point(f"drift --all-targets, {size} databases of the shipped schema: first run", cold.seconds,
                  cold.peak_mb, 30.0),
            Point(f"drift --all-targets, {size} databases: again (median of {runs})", median_seconds(again),
                  peak_mb(again), 30.0)]


def _reports(document) -> list[dict]:
    """Every drift report in a JSON document: each object that carries an in_sync verdict."""
    if isinstance(document, dict):
        own = [document] if "in_sync" in document else []
        return own + [r for value in document.values() for r in _reports(value)]
    if isinstance(document, list):
        return [r for value in document for r in _reports(value)]
    return []


def _json(run: Measured):
    try:
        return json.loads(run.stdout), None
    except ValueError as exc:
        return None, f"its output is not one JSON document ({exc})"


def _all_in_sync(run: Measured, size: int) -> str | None:
    document, error = _json(run)
    if error:
        return error
    reports = _reports(document)
    if len(reports) != size:
        return f"{len(reports)} target reports with an in_sync verdict, expected {size}"
    drifted = [r.get("target", "?") for r in reports if r["in_sync"] is not True]
    return f"{len(drifted)} target(s) not in sync: {drifted[:5]}" if drifted else None


def _cached_in_sync(run: Measured) -> str | None:
    document, error = _json(run)
    if error:
        return error
    if document.get("in_sync") is not True:
        return "the target is not in sync"
    if document.get("declared_state") != "cached":
        return f"declared_state is {document.get('declared_state')!r}, not 'cached': this is not a cached drift"
    return None


def _stop_embedded(project: Path) -> None:
    """Stop the project's embedded server where reconcile has a command for it, then remove its data
    when no server runs on it (as root it lives outside the project, under /var/lib/reconcile)."""
    from reconcile_engine.config import load_config
    from reconcile_engine.servers import embedded_data_dir

    commands = timed([sys.executable, REPO / "reconcile.py", "--help"]).stdout
    if any(line.split()[:1] == ["server"] for line in commands.splitlines()):
        timed(reconcile("server stop", project, as_of=False))
    data_dir = embedded_data_dir(load_config(project))
    if data_dir.exists() and not (data_dir / "postmaster.pid").exists():
        shutil.rmtree(data_dir.parent, ignore_errors=True)
