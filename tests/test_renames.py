"""Renames: `-- reconcile: renamed from <old name>` plans ALTER ... RENAME, keeping the data, where the
target still has the old name; a stale directive does nothing but say so."""

import json

import pytest

from reconcile_engine.declared.renames import renames_in
from reconcile_engine.errors import DeclaredStateError

AS_OF = "2026-06-01"


def test_directives_are_tied_to_what_follows_them():
    sql = """-- reconcile: renamed from people
CREATE TABLE app.users (
    id int PRIMARY KEY,
    -- reconcile: renamed from "Mail"
    email text,
    -- reconcile: renamed from old_check
    CONSTRAINT email_present CHECK (email <> '')
);
/* reconcile: renamed from users_mail_idx */
CREATE INDEX users_email_idx ON app.users (email);
-- reconcile: renamed from app.everyone
CREATE VIEW app.all_users AS SELECT id FROM app.users;
-- reconcile: renamed from own_rows
CREATE POLICY own_users ON app.users USING (true);
"""
    statements = [r.statement() for r in renames_in(sql, "schema/users.sql")]
    assert statements == [
        "ALTER TABLE app.people RENAME TO users",
        'ALTER TABLE app.users RENAME COLUMN "Mail" TO email',
        "ALTER TABLE app.users RENAME CONSTRAINT old_check TO email_present",
        "ALTER INDEX app.users_mail_idx RENAME TO users_email_idx",
        "ALTER VIEW app.everyone RENAME TO all_users",
        "ALTER POLICY own_rows ON app.users RENAME TO own_users",
    ]


@pytest.mark.parametrize("sql, message", [
    ("-- reconcile: renamed from x; DROP TABLE users\nCREATE TABLE t (id int);", "expected a name"),
    ("-- reconcile: renamed from pg_catalog.pg_class\nCREATE TABLE t (id int);", "a rename stays in its schema"),
    ("CREATE TABLE t (\n  -- reconcile: renamed from public.old\n  id int);", "within its table"),
    ("CREATE TABLE t (\n  -- reconcile: renamed from public.t.old\n  id int);", "expected a name"),
    ("CREATE TABLE t (id int);\n-- reconcile: renamed from old\n", "must come right before what it renames"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
     "-- reconcile: renamed from g\nCREATE FUNCTION h() RETURNS int LANGUAGE sql AS 'SELECT 1';", "must come right before a CREATE"),
])
def test_a_directive_that_is_not_a_plain_rename_is_refused_naming_the_line(sql, message):
    with pytest.raises(DeclaredStateError) as refused:
        renames_in(sql, "schema/t.sql")
    assert message in str(refused.value) and "schema/t.sql:" in str(refused.value)


def _rename_email(project):
    users = project / "schema" / "020_users.sql"
    text = users.read_text()
    assert "    email            text NOT NULL UNIQUE," in text
    users.write_text(text.replace("    email            text NOT NULL UNIQUE,",
                                  "    -- reconcile: renamed from email\n    email_address    text NOT NULL UNIQUE,"))


def test_a_renamed_column_keeps_its_data_and_rolls_back(cli, project, sql, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'One')")
    sql(target_url, "INSERT INTO users (id, email, organization_id) VALUES ('u1', 'u1@example.com', 'o1')")
    _rename_email(project)

    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "rename_email", "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    sqls = [s["sql"] for s in plan["statements"]]
    assert sqls[0] == "ALTER TABLE public.users RENAME COLUMN email TO email_address"
    assert not any("drop column" in s.lower() for s in sqls) and not [s for s in plan["statements"] if s["destructive"]]
    assert cli("apply")[0] == 0
    assert sql(target_url, "SELECT email_address FROM users") == [("u1@example.com",)]
    assert cli("drift", "--as-of", AS_OF)[0] == 0

    # The directive left in the file does nothing more, and says why.
    code, out, err = cli("plan", "--as-of", AS_OF, "--no-cache")
    assert code == 0 and "No changes" in out
    assert "renamed from email: no column public.users.email on the target, which has public.users.email_address" in out + err

    code, out, err = cli("rollback")
    assert code == 0, err
    assert sql(target_url, "SELECT email FROM users") == [("u1@example.com",)]


def test_a_stale_directive_is_ignored_with_a_note(cli, project, sql, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("    email            text NOT NULL UNIQUE,",
                                               "    -- reconcile: renamed from mail\n    email            text NOT NULL UNIQUE,"))
    code, out, err = cli("plan", "--as-of", AS_OF)
    assert code == 0 and "No changes" in out
    assert "renamed from mail: no column public.users.mail on the target" in out + err and "ignored" in out + err


def test_a_renamed_table_with_rows_keeps_them(cli, project, sql, target_url, tmp_path):
    folder = tmp_path / "app"
    (folder / "schema").mkdir(parents=True)
    (folder / "migrations").mkdir()
    table = folder / "schema" / "people.sql"
    table.write_text("CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL);\n"
                     "CREATE INDEX people_name_idx ON people (name);\n")
    assert cli("plan", folder=folder)[0] == 0 and cli("apply", folder=folder)[0] == 0
    sql(target_url, "INSERT INTO people SELECT g, 'n' || g FROM generate_series(1, 1000) g")
    table.write_text("-- reconcile: renamed from people\nCREATE TABLE members (id int PRIMARY KEY, name text NOT NULL);\n"
                     "-- reconcile: renamed from people_name_idx\nCREATE INDEX members_name_idx ON members (name);\n")

    code, out, err = cli("plan", "--name", "members", folder=folder)
    assert code == 0, err
    assert "(rehearsed: leads back exactly)" in out
    assert cli("apply", folder=folder)[0] == 0
    assert sql(target_url, "SELECT count(*) FROM members") == [(1000,)]
    assert cli("drift", folder=folder)[0] == 0
