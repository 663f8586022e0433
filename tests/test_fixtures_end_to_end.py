"""Every case of tests/FIXTURES through the command line, as a team would meet it: the target holds a.sql,
the declared files say b.sql; plan (rehearsed both ways), apply, drift in sync, and the target then equals
b.sql loaded directly, by our own catalog reading (not through the tool's verdict) and by pg_dump."""

from pathlib import Path

import pytest
import yaml
from pglast.parser import split
from conftest import server_major
from dump_compare import schema_statements
from test_corrections import CASES, FIXTURES, _load

from reconcile_engine.cli import run
from reconcile_engine.diff.migra_diff import diff
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.inspection.snapshot import Scope, read_snapshot

AS_OF = "2026-06-01"


def _declared(sql_text: str) -> str:
    """b.sql as declared files may say it: without its DO blocks (which create the case's roles on the
    server, as a.sql did already) and rows (the target's rows are a.sql's), which they may not contain."""
    return "\n".join(s + ";" for s in split(sql_text) if s.lstrip().split(None, 1)[0].upper() not in ("DO", "INSERT", "SELECT"))


def _project(folder: Path, case: str, expect: dict) -> Path:
    (folder / "schema").mkdir(parents=True)
    (folder / "migrations").mkdir()
    (folder / "schema" / f"{case}.sql").write_text(_declared((FIXTURES / case / "b.sql").read_text()))
    (folder / "reconcile.yaml").write_text(yaml.safe_dump({"managed_schemas": ["public"],
                                                            "privileges": bool(expect.get("privileges"))}))
    return folder


@pytest.mark.parametrize("case", CASES)
def test_case_plans_applies_and_drift_is_clean(case, new_database, tmp_path, capsys):
    expect = yaml.safe_load((FIXTURES / case / "expect.yaml").read_text())
    target, declared = new_database(), new_database()
    if expect.get("server_min") and server_major(target) < expect["server_min"]:
        pytest.skip(f"PostgreSQL {expect['server_min']} or later")
    _load(target, (FIXTURES / case / "a.sql").read_text())
    _load(declared, (FIXTURES / case / "b.sql").read_text())
    folder = _project(tmp_path / "project", case, expect)

    def reconcile(*args):
        code = run([*args, "--project", str(folder), "--database-url", target])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = reconcile("plan", "--name", case, "--as-of", AS_OF)
    assert code == 0, out + err
    [plan] = sorted((folder / "migrations").glob("*.sql"))
    # What the case removes is for a reviewer to approve: here, approved.
    plan.write_text(plan.read_text().replace("-- destructive-approved: no", "-- destructive-approved: yes"))
    code, out, err = reconcile("apply")
    assert code == 0, out + err
    code, out, err = reconcile("drift", "--as-of", AS_OF)
    assert code == 0 and "In sync" in out, out + err  # (lint warnings on the case's own design may follow)
    scope = Scope(("public",), privileges=bool(expect.get("privileges")))
    assert read_snapshot(target, scope).differences(read_snapshot(declared, scope)) == []
    # and by migra (with the corrections): the rehearsal judged convergence by the snapshot alone
    assert [s.sql for s in diff(inspect_database(target, scope), inspect_database(declared, scope)).statements] == []
    # And what pg_dump shows (the exam the issue set): the same statements.
    after, wanted = schema_statements(target), schema_statements(declared)
    assert after == wanted, "\n".join(["only on the target:", *sorted(after - wanted), "only declared:", *sorted(wanted - after)])
