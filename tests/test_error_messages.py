"""Errors that name what is at fault (the file and line, the part of the URL), exit 1, never leak a
password, and change nothing."""

import re
import textwrap
from pathlib import Path

import pytest
from conftest import project_tree
from test_cli import plan_files, table_names

from reconcile_engine.cli import run

COMMANDS_THAT_CONNECT = ["plan", "drift", "apply", "rollback", "status", "maintain", "pull", "lint", "test"]


def _reconcile(capsys, folder, *args):
    code = run([*args, "--project", str(folder)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# 1. A port that is not a number.

@pytest.mark.parametrize("command", COMMANDS_THAT_CONNECT)
def test_a_port_that_is_not_a_number_is_named_without_the_password(capsys, project, command):
    before = project_tree(project)

    code, out, err = _reconcile(capsys, project, command, "--database-url", "postgresql://u:pw5ecret@localhost:abc/db")

    assert code == 1, err
    assert "error: cannot connect to u@localhost/db: the port in the database URL must be a number" in err
    assert "internal error" not in err and "Traceback" not in err
    assert "pw5ecret" not in out + err
    assert project_tree(project) == before


# 2. A declared file that is not UTF-8.

@pytest.mark.parametrize("name", ["schema/x.sql", "schema/x.sql.j2", "views/x.sql", "partitions/x.yaml"])
def test_a_declared_file_that_is_not_utf8_is_named_with_its_line(cli, project, target_url, name):
    path = project / name
    path.write_bytes(b"-- a comment\n-- another\nCOMMENT ON TABLE users IS 'caf\xe9 \xff';\n")
    before = project_tree(project)

    code, out, err = cli("plan")

    assert code == 1, out + err
    assert f"error: {name}:3: not UTF-8: byte 0xe9 at position 31 of the line; save the file as UTF-8" in err
    assert project_tree(project) == before and not plan_files(project)
    assert table_names(target_url) is None


def test_a_data_step_that_is_not_utf8_is_named_with_its_line(cli, project, target_url):
    (project / "data").mkdir()
    (project / "data" / "fill.sql").write_bytes(b"UPDATE users\nSET email = lower(email)\nWHERE email <> '\xff';\n")

    code, out, err = cli("plan", "--data-after", "data/fill.sql")

    assert code == 1, out + err
    assert "error: data/fill.sql:3: not UTF-8: byte 0xff at position 17 of the line" in err
    assert not plan_files(project) and table_names(target_url) is None


# 3. A statement of several lines that fails: the line that fails.

EXT = """
CREATE SCHEMA ext;
CREATE FUNCTION ext.label(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper($1) $$;
"""

ITEMS = """
CREATE TABLE items (
    id bigint PRIMARY KEY,
    name text NOT NULL
);
"""

LABELS = """
CREATE VIEW item_labels AS
SELECT id,
       ext.label(name) AS label
FROM items;
"""


def _external_project(tmp_path):
    folder = tmp_path / "app"
    for name, text in {"schema/items.sql": ITEMS, "views/labels.sql": LABELS,
                       "reconcile.yaml": "external_schemas: [ext]\n"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    (folder / "migrations").mkdir()
    return folder


def test_a_statement_that_fails_at_apply_is_named_by_the_plan_files_line(capsys, tmp_path, target_url, sql):
    """The plan was rehearsed with ext.label; the external schema changed since (it is never compared,
    so the fingerprint still matches): apply fails in the view's second line."""
    sql(target_url, EXT)
    folder = _external_project(tmp_path)
    assert _reconcile(capsys, folder, "plan", "--name", "labels", "--database-url", target_url)[0] == 0
    [plan] = plan_files(folder)
    lines = plan.read_text().splitlines()
    [failing_line] = [number for number, line in enumerate(lines, 1) if "ext.label(" in line]
    assert lines[failing_line - 2].startswith("create or replace view")  # the statement begins a line above
    sql(target_url, "DROP FUNCTION ext.label(text)")

    code, out, err = _reconcile(capsys, folder, "apply", "--database-url", target_url)

    assert code == 1, out + err
    found = re.search(r"error: \S+: statement 4 \(create view public\.item_labels\) failed at (\S+):(\d+): "
                      r"function ext\.label\(text\) does not exist; rolled back, nothing was applied", err)
    assert found, err
    assert Path(found.group(1)).resolve() == plan.resolve() and found.group(1).endswith(f"migrations/{plan.name}")
    assert int(found.group(2)) == failing_line
    assert table_names(target_url) is None
    assert sql(target_url, "SELECT count(*) FROM reconcile.history") == [(0,)]


def test_a_declared_statement_that_fails_is_named_by_its_files_line(capsys, tmp_path, target_url):
    """Without the external schema, the view fails where the declared state is built: its file's line."""
    folder = _external_project(tmp_path)
    (folder / "reconcile.yaml").write_text("")

    code, out, err = _reconcile(capsys, folder, "plan", "--database-url", target_url)

    assert code == 1, out + err
    assert 'error: views/labels.sql:3: schema "ext" does not exist' in err
    assert not plan_files(folder) and table_names(target_url) is None


# 4. An '@' left unencoded in the password.

SECRET_PARTS = ("s3cr", "tXYZ")


@pytest.mark.parametrize("command", COMMANDS_THAT_CONNECT)
def test_an_unencoded_at_sign_in_the_password_leaks_no_part_of_it(capsys, project, command):
    before = project_tree(project)

    code, out, err = _reconcile(capsys, project, command, "--verbose",
                                "--database-url", "postgresql://u:s3cr@tXYZ@nohost.invalid:5432/db")

    assert code == 1, err
    assert "error: cannot connect to u@nohost.invalid:5432/db: the database URL holds more than one '@'" in err
    assert "percent-encode '@' as %40" in err
    assert not any(part in out + err for part in SECRET_PARTS), err
    assert project_tree(project) == before


@pytest.mark.parametrize("where", ["environment", "config"])
def test_the_password_stays_hidden_wherever_the_url_comes_from(capsys, monkeypatch, project, where):
    url = "postgresql://u:s3cr@tXYZ@nohost.invalid:5432/db"
    if where == "environment":
        monkeypatch.setenv("DATABASE_URL", url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        config = project / "reconcile.yaml"
        config.write_text(config.read_text() + f"\ndatabase_url: {url}\n")

    code, out, err = _reconcile(capsys, project, "drift")

    assert code == 1 and "percent-encode '@' as %40" in err
    assert not any(part in out + err for part in SECRET_PARTS), err


def test_a_slash_in_the_password_leaks_no_part_of_it(capsys, project):
    code, out, err = _reconcile(capsys, project, "status", "--database-url", "postgresql://u:s3cr/tXYZ@nohost.invalid/db")

    assert code == 1
    assert "percent-encode '/' as %2F" in err
    assert not any(part in out + err for part in SECRET_PARTS), err
