"""reconcile check (the CI gate: committed plans replayed without the target) and plan --baseline.

Plans are made against a real target; check runs on the scratch server of reconcile.yaml (the test
server, scratch.mode: server), with --database-url and $DATABASE_URL pointing nowhere."""

import dataclasses
import json
import shutil

from reconcile_engine.planning import planfile

from conftest import project_tree

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nowhere"


def _scratch_on(project, server_url):
    config = project / "reconcile.yaml"
    text = config.read_text()
    assert "  mode: auto\n" in text
    config.write_text(text.replace("  mode: auto\n", f"  mode: server\n  server_url: {server_url}\n"))


def _declare(project, name, sql):
    (project / "schema" / name).write_text(sql)


def _plan(cli, name):
    code, out, err = cli("plan", "--name", name)
    assert code == 0, err
    return sorted((p for p in (cli.project / "migrations").glob(f"*_{name}.sql")), key=lambda p: p.name)[-1]


def _check(cli):
    code, out, err = cli("check", "--format", "json", url=UNREACHABLE)
    return code, json.loads(out) if out.strip() else None, err


@dataclasses.dataclass
class _Cli:
    call: object
    project: object

    def __call__(self, *args, **kwargs):
        return self.call(*args, **kwargs)


def _setup(project, cli, pg_server_url, monkeypatch):
    _scratch_on(project, pg_server_url)
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)  # --database-url is given to plan and apply
    return _Cli(cli, project)


def test_check_replays_the_plans_without_the_target(project, cli, pg_server_url, monkeypatch):
    cli = _setup(project, cli, pg_server_url, monkeypatch)
    first = _plan(cli, "init")
    code, out, err = cli("check", url=UNREACHABLE)
    assert code == 0, err
    assert out.startswith("check passed: replayed from an empty database: 1 plan(s), ")

    # A tenant table without row-level security: the security lint's finding fails the check too.
    _declare(project, "090_notes.sql", "CREATE TABLE public.notes (id bigint PRIMARY KEY, organization_id bigint);\n")
    before = project_tree(project / "migrations")
    code, report, err = _check(cli)
    assert code == 1
    assert report["plans_replayed"] == [first.name] and not report["ok"]
    assert [(f["kind"], f["subject"]) for f in report["failures"]] == [("not-planned", "schema/090_notes.sql"),
                                                                       ("lint", "public.notes")]
    assert report["failures"][1]["message"].startswith("public.notes: security lint: tenant-table-without-rls: ")
    assert report["failures"][0]["message"].startswith(
        "schema/090_notes.sql: not planned: table public.notes: declared but no plan creates it")
    assert report["failures"][0]["message"].endswith("; run 'reconcile plan'")
    assert project_tree(project / "migrations") == before


def test_two_branches_planned_from_the_same_base(project, cli, pg_server_url, monkeypatch, tmp_path):
    cli = _setup(project, cli, pg_server_url, monkeypatch)
    _plan(cli, "init")
    assert cli("apply")[0] == 0
    # Branch one plans table a; branch two, from the same base, table b; then both are merged.
    _declare(project, "091_a.sql", "CREATE TABLE public.a (id bigint PRIMARY KEY);\n")
    branch_one = _plan(cli, "a")
    aside = tmp_path / branch_one.name
    shutil.move(branch_one, aside)
    shutil.move(project / "schema" / "091_a.sql", tmp_path / "091_a.sql")
    _declare(project, "092_b.sql", "CREATE TABLE public.b (id bigint PRIMARY KEY);\n")
    branch_two = _plan(cli, "b")
    shutil.move(aside, branch_one)
    shutil.move(tmp_path / "091_a.sql", project / "schema" / "091_a.sql")
    # Both made in the same second: their order is by name alone.
    merged = branch_two.rename(branch_two.with_name(branch_one.name[:14] + "_b.sql"))

    code, report, err = _check(cli)
    assert code == 1
    assert [(f["kind"], f["subject"]) for f in report["failures"]] == [
        ("same-timestamp", f"migrations/{merged.name}"), ("different-bases", f"migrations/{merged.name}")]
    assert report["failures"][1]["message"] == (
        f"migrations/{merged.name}: made on the same base as migrations/{branch_one.name} (a merge of two "
        f"branches); delete {merged.name} and run 'reconcile plan' again")


def test_partitions_maintain_made_between_two_plans(project, cli, pg_server_url, monkeypatch):
    """Cron's maintain adds next year's partition between two plans on the target: the later plan was
    made on a base the earlier does not end at, and does not make that partition; the replay makes
    what maintain made, and check passes."""
    cli = _setup(project, cli, pg_server_url, monkeypatch)
    code, _, err = cli("plan", "--as-of", "2026-06-01", "--name", "init")
    assert code == 0, err
    assert cli("apply")[0] == 0
    code, out, err = cli("maintain", "--as-of", "2027-01-02")
    assert code == 0 and "aggregated_analytics_2028" in out, err
    _declare(project, "093_c.sql", "CREATE TABLE public.c (id bigint PRIMARY KEY);\n")
    code, out, err = cli("plan", "--as-of", "2027-01-02", "--name", "c")
    assert code == 0, err
    assert "aggregated_analytics_2028" not in out  # the target had it

    code, report, err = _check(cli)
    assert code == 0, (report, err)
    assert len(report["plans_replayed"]) == 2

    # The same after a baseline: maintain adds 2029, then a plan follows the baseline.
    assert cli("apply")[0] == 0
    code, _, err = cli("plan", "--baseline")
    assert code == 0, err
    code, out, err = cli("maintain", "--as-of", "2028-01-02")
    assert code == 0 and "aggregated_analytics_2029" in out, err
    _declare(project, "094_d.sql", "CREATE TABLE public.d (id bigint PRIMARY KEY);\n")
    code, out, err = cli("plan", "--as-of", "2028-01-02", "--name", "d")
    assert code == 0, err
    code, report, err = _check(cli)
    assert code == 0, (report, err)
    assert report["baseline"] and len(report["plans_replayed"]) == 1


def test_an_edited_plan_and_one_that_no_longer_applies(project, cli, pg_server_url, monkeypatch):
    cli = _setup(project, cli, pg_server_url, monkeypatch)
    first = _plan(cli, "init")
    assert cli("apply")[0] == 0
    _declare(project, "093_c.sql", "CREATE TABLE public.c (id bigint PRIMARY KEY);\n")
    second = _plan(cli, "c")
    # The first edited by hand (its summary), without 'reconcile rehearse': its seal no longer holds.
    text = first.read_text()
    first.write_text(text.replace("--     1. ", "--     1. (edited) ", 1))
    # The second, sealed anew, runs a statement that fails on the state the first leaves.
    read = planfile.read(second)
    failing = dataclasses.replace(read.plan.statements[0], sql="ALTER TABLE public.no_such_table ADD COLUMN x int;")
    planfile.rewrite(dataclasses.replace(read.plan, statements=(failing, *read.plan.statements[1:])), second)
    assert planfile.read(second).seal_problem() is None
    before = project_tree(project / "migrations")

    code, out, err = cli("check", url=UNREACHABLE)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"migrations/{first.name}: statement 1 (")
    assert "was changed after its rehearsal" in lines[0]
    assert lines[0].endswith(f"run 'reconcile rehearse migrations/{first.name}'")
    assert lines[1].startswith(f"migrations/{second.name}: statement 1 (")
    assert 'relation "public.no_such_table" does not exist' in lines[1]
    assert lines[1].endswith(f"delete {second.name} and run 'reconcile plan' again")
    assert lines[2].startswith("check failed: 2 failure(s)")
    assert project_tree(project / "migrations") == before


def test_a_baseline_cuts_the_replay(project, cli, pg_server_url, monkeypatch):
    cli = _setup(project, cli, pg_server_url, monkeypatch)
    _plan(cli, "init")
    assert cli("apply")[0] == 0
    _declare(project, "094_scratchpad.sql", "CREATE TABLE public.scratchpad (id bigint PRIMARY KEY, note text);\n")
    _plan(cli, "scratchpad")
    assert cli("apply")[0] == 0
    (project / "schema" / "094_scratchpad.sql").unlink()
    dropped = _plan(cli, "drop_scratchpad")
    code, full, err = _check(cli)
    assert code == 0, err
    assert len(full["plans_replayed"]) == 3 and full["baseline"] is None

    code, out, err = cli("plan", "--baseline", url=UNREACHABLE)
    assert code == 0, err
    [baseline] = (project / "migrations" / "baselines").iterdir()
    assert f"-- baseline-covers: {dropped.name}\n" in baseline.read_text()
    assert planfile.read(baseline).seal_problem() is None
    code, cut, err = _check(cli)
    assert code == 0, err
    assert cut["baseline"] == f"migrations/baselines/{baseline.name}" and cut["plans_replayed"] == []
    assert cut["statements_replayed"] < full["statements_replayed"]
    # apply and status do not see it: the last plan is the only pending one.
    code, out, err = cli("status", "--format", "json")
    assert json.loads(out)["pending"] == [dropped.name]

    assert cli("apply", "--allow-destructive")[0] == 0
    _declare(project, "095_after.sql", "CREATE TABLE public.after_baseline (id bigint PRIMARY KEY);\n")
    after = _plan(cli, "after")
    code, report, err = _check(cli)
    assert code == 0, err
    assert report["plans_replayed"] == [after.name] and report["baseline"] == cut["baseline"]


def test_an_adopted_database_needs_a_baseline_and_hostile_paths(project, cli, pg_server_url, monkeypatch,
                                                               target_url, sql, tmp_path):
    cli = _setup(project, cli, pg_server_url, monkeypatch)
    sql(target_url, "CREATE TABLE public.legacy (id int)")  # the first plan starts from a database in use
    first = _plan(cli, "adopt")
    code, out, err = cli("check", url=UNREACHABLE)
    assert code == 1
    assert out.splitlines()[0] == (
        f"migrations/{first.name}: made on a database that was not empty (adopted with 'reconcile pull'?), so the "
        f"plans cannot be replayed from an empty one: run 'reconcile plan --baseline' to write a baseline they "
        f"start from")

    # A baselines folder that leads outside the project is neither read nor written through.
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "migrations" / "baselines").symlink_to(outside)
    for command in (("check",), ("plan", "--baseline")):
        code, out, err = cli(*command, url=UNREACHABLE)
        assert code == 1 and "migrations/baselines: a symbolic link" in err, err
    assert list(outside.iterdir()) == []
    (project / "migrations" / "baselines").unlink()

    assert cli("plan", "--baseline", url=UNREACHABLE)[0] == 0
    code, report, err = _check(cli)
    assert code == 0, err
    [baseline] = (project / "migrations" / "baselines").iterdir()

    # A plan file that is a link to a file elsewhere is refused, and the file left as it was.
    elsewhere = tmp_path / "elsewhere.sql"
    elsewhere.write_text(first.read_text())
    link = project / "migrations" / "29990101000000_elsewhere.sql"
    link.symlink_to(elsewhere)
    code, out, err = cli("check", url=UNREACHABLE)
    assert code == 1 and f"migrations/{link.name}: a symbolic link" in err
    assert elsewhere.read_text() == first.read_text()
    link.unlink()

    # A baseline whose sealed header names a path rather than a plan is refused; nothing is followed.
    read = planfile.read(baseline)
    baseline.unlink()
    hostile = planfile.write_baseline(read.plan, project / "migrations", "../../elsewhere.sql")
    code, out, err = cli("check", url=UNREACHABLE)
    assert code == 1
    assert f"migrations/baselines/{hostile.name}: '-- baseline-covers: ../../elsewhere.sql' names no plan" in err
    assert elsewhere.read_text() == first.read_text()
