"""What changes with size: statements sent in batches (errors still name their statement and line),
and a plan that builds the whole schema committing in parts (PostgreSQL's lock table is finite)."""

import datetime as dt
import json

import pytest

from reconcile_engine.cli import run
from reconcile_engine.diff.operations import SchemaDiff
from reconcile_engine.diff.statement_facts import operation
from reconcile_engine.inspection.snapshot import CatalogSnapshot
from reconcile_engine.planning.build import WHOLE_SCHEMA_PART, build_plan
from reconcile_engine.runner import BATCH_SIZE

AS_OF = "2026-06-01"


def _scalar(sql, url, query):
    return sql(url, query)[0][0]


@pytest.fixture
def many_tables(tmp_path):
    """A project of N small tables, each with an index: 2N + 1 statements to create."""

    def make(n, broken_at=None):
        folder = tmp_path / f"many{n}"
        (folder / "schema").mkdir(parents=True)
        lines = []
        for i in range(n):
            kind = "no_such_type" if i == broken_at else "text"
            lines.append(f"CREATE TABLE t{i:04d} (\n    id bigint PRIMARY KEY,\n    v {kind}\n);")
            lines.append(f"CREATE INDEX t{i:04d}_v_idx ON t{i:04d} (v);")
        (folder / "schema" / "tables.sql").write_text("\n".join(lines) + "\n")
        return folder

    return make


def reconcile_in(capsys, folder, url, *args):
    code = run([*args, "--project", str(folder), "--database-url", url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_error_deep_in_a_batch_of_declared_statements_names_its_line(capsys, many_tables, target_url, sql):
    broken = BATCH_SIZE // 2 + 20  # well inside the first batches, not at their start
    folder = many_tables(BATCH_SIZE, broken_at=broken)
    code, out, err = reconcile_in(capsys, folder, target_url, "plan", "--as-of", AS_OF)
    line = 1 + broken * 5 + 2  # each table takes 5 lines; its column v is on the third
    assert code == 1
    assert f"error: schema/tables.sql:{line}: type \"no_such_type\" does not exist" in err
    assert _scalar(sql, target_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    assert _scalar(sql, target_url, "SELECT count(*) FROM pg_database WHERE datname LIKE 'reconcile_scratch_%'") == 0
    assert not (folder / "migrations").exists() or not list((folder / "migrations").glob("*.sql"))


def test_statements_that_must_run_alone_or_end_in_a_comment_still_load(capsys, many_tables, target_url):
    folder = many_tables(3)
    with open(folder / "schema" / "tables.sql", "a") as out:
        out.write("CREATE INDEX CONCURRENTLY t0000_id_v_idx ON t0000 (id, v);\n"
                  "CREATE TABLE after_it (id int PRIMARY KEY) -- a comment where the ';' would be\n;\n"
                  "CREATE TABLE last_one (id int PRIMARY KEY);\n")
    code, out, err = reconcile_in(capsys, folder, target_url, "plan", "--as-of", AS_OF, "--dry-run")
    assert code == 0, err
    assert "t0000_id_v_idx" in out and "after_it" in out and "last_one" in out


def test_a_rehearsal_failure_inside_a_batch_names_its_statement(capsys, many_tables, target_url, sql, tmp_path):
    folder = many_tables(10)
    step = tmp_path / "before.sql"
    step.write_text("SELECT 1;\nUPDATE no_such_table SET x = 1;\n")
    code, out, err = reconcile_in(capsys, folder, target_url, "plan", "--as-of", AS_OF, "--data-before", str(step))
    assert code == 1
    assert "the plan fails on a copy of the target, so it was not written: rehearsal: statement 2 " in err
    assert 'relation "no_such_table" does not exist' in err
    assert _scalar(sql, target_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    assert not list((folder / "migrations").glob("*.sql")) if (folder / "migrations").exists() else True


def test_a_plan_that_builds_the_whole_schema_commits_in_parts(capsys, many_tables, target_url, sql):
    n = WHOLE_SCHEMA_PART // 2  # each table and its key and index: several statements, so several parts
    folder = many_tables(n)
    code, out, err = reconcile_in(capsys, folder, target_url, "plan", "--as-of", AS_OF)
    assert code == 0, err
    (plan_file,) = (folder / "migrations").glob("*.sql")
    text = plan_file.read_text()
    statements = text.count("\n-- [")
    assert statements >= 2 * WHOLE_SCHEMA_PART
    assert text.count("-- reconcile: commit here (a plan that builds or removes the whole schema") == \
        (statements - 1) // WHOLE_SCHEMA_PART
    (rollback_file,) = (folder / "migrations" / "rollback").glob("*.sql")
    assert "commit here (a plan that builds or removes the whole schema" in rollback_file.read_text()
    code, out, err = reconcile_in(capsys, folder, target_url, "apply")
    assert code == 0, err
    assert _scalar(sql, target_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == n
    assert _scalar(sql, target_url, "SELECT count(*) FROM reconcile.history") == 1
    code, out, _ = reconcile_in(capsys, folder, target_url, "drift", "--as-of", AS_OF, "--no-cache", "--format", "json")
    assert code == 0 and json.loads(out)["in_sync"]


def _diff(n):
    return SchemaDiff(tuple(operation(f"CREATE TABLE t{i} (id int);", "migra") for i in range(n)), ())


def test_parts_only_for_a_whole_schema_and_never_after_the_last_statement():
    empty = CatalogSnapshot({("schema", "public"): ""})
    live = CatalogSnapshot({("schema", "public"): "", ("table", "public.users"): "kind r"})
    as_of = dt.date(2026, 6, 1)
    commits = [n for n, s in enumerate(build_plan(_diff(2 * WHOLE_SCHEMA_PART), empty, live, as_of).statements, 1)
               if s.commit_after]
    assert commits == [WHOLE_SCHEMA_PART]
    assert not any(s.commit_after for s in build_plan(_diff(2 * WHOLE_SCHEMA_PART), live, live, as_of).statements)
    assert not any(s.commit_after for s in build_plan(_diff(WHOLE_SCHEMA_PART), empty, live, as_of).statements)
    data = SchemaDiff(_diff(WHOLE_SCHEMA_PART + 5).statements + (operation("UPDATE x SET y = 1;", "data (after)"),), ())
    assert not any(s.commit_after for s in build_plan(data, empty, live, as_of).statements)



def test_the_copy_of_an_empty_target_keeps_its_schema_comment(capsys, many_tables, target_url, sql):
    sql(target_url, "COMMENT ON SCHEMA public IS 'kept by the team'")
    folder = many_tables(2)
    code, out, err = reconcile_in(capsys, folder, target_url, "plan", "--as-of", AS_OF, "--dry-run")
    assert code == 0, err
    assert "rehearsed on a copy" in out
