"""A reviewed plan cannot change silently: apply and rollback refuse a plan whose statements are not the
ones its rehearsal proved; 'reconcile rehearse' proves an edited plan again and rewrites its header."""

import os
import uuid

import pytest

AS_OF = "2026-06-01"
GRANT = "GRANT ALL ON TABLE users TO PUBLIC;"


def _count(sql, url, query):
    return sql(url, query)[0][0]


def _public_grants(sql, url):
    return _count(sql, url, "SELECT count(*) FROM aclexplode((SELECT relacl FROM pg_class WHERE oid = 'users'::regclass)) "
                            "WHERE grantee = 0")


def _bio_plan(cli, project):
    """The shipped schema applied, then a reviewed plan that adds users.bio, not yet applied."""
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("created_at       timestamptz NOT NULL DEFAULT now()\n);",
                                               "created_at       timestamptz NOT NULL DEFAULT now(),\n    bio text\n);"))
    code, _, err = cli("plan", "--as-of", AS_OF, "--name", "bio")
    assert code == 0, err
    return sorted((project / "migrations").glob("*_bio.sql"))[-1]


def _nothing_applied(sql, url):
    assert _count(sql, url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 0
    assert _count(sql, url, "SELECT count(*) FROM reconcile.history") == 1
    assert _public_grants(sql, url) == 0


def test_an_appended_grant_is_refused_until_rehearsed_and_then_shows_in_the_header(cli, project, target_url, sql):
    plan = _bio_plan(cli, project)
    plan.write_text(plan.read_text() + f"\n{GRANT}\n")

    code, out, err = cli("status")
    assert code == 0 and f"{plan.name}  (apply refuses it: statement 2 (GRANT ALL ON TABLE users TO PUBLIC) was " \
        f"added after its rehearsal; run 'reconcile rehearse migrations/{plan.name}')" in out

    code, out, err = cli("apply")

    assert code == 1
    assert err.strip() == (
        f"error: migrations/{plan.name}: statement 2 (GRANT ALL ON TABLE users TO PUBLIC) was added after its "
        f"rehearsal; nothing was applied: a plan runs only as it was rehearsed; review the change, then run "
        f"'reconcile rehearse migrations/{plan.name}' to rehearse the edited plan and rewrite its header")
    _nothing_applied(sql, target_url)

    code, out, err = cli("rehearse", f"migrations/{plan.name}")

    assert code == 0, err
    assert f"-- rewrote migrations/{plan.name}" in out
    header = plan.read_text().split("-- ---- statements ----")[0]
    assert "--     2. GRANT ALL ON TABLE users TO PUBLIC" in header, header
    assert cli("apply")[0] == 0
    assert _public_grants(sql, target_url) > 0
    assert _count(sql, target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 1


def _change_statement(text):
    return text.replace('add column "bio" text;', 'add column "bio" varchar(10);')


def _remove_statement(text):
    return text.replace('alter table "public"."users" add column "bio" text;', "")


def _edit_fingerprint(text):
    return text.replace("-- fingerprint-after: sha256:", "-- fingerprint-after: sha256:0", 1)


def _edit_summary(text):
    return text.replace(". alter table public.users: add column bio", ". alter table public.users: a harmless comment", 1)


def _drop_checksum(text):
    return "\n".join(line for line in text.splitlines() if not line.startswith("-- checksum:"))


def _add_commit_point(text):
    return text.replace('add column "bio" text;', 'add column "bio" text;\n-- reconcile: commit here (by hand)')


@pytest.mark.parametrize("edit, expected", [
    (_change_statement, 'statement 1 (alter table "public"."users" add column "bio" varchar(10)) was changed after '
                        'its rehearsal'),
    (_add_commit_point, 'statement 1 (alter table "public"."users" add column "bio" text) was changed after its '
                        'rehearsal'),
    (_remove_statement, "it no longer matches the checksum written when it was rehearsed"),
    (_edit_fingerprint, "it no longer matches the checksum written when it was rehearsed"),
    (_edit_summary, "statement 1 (alter table \"public\".\"users\" add column \"bio\" text) was changed"),
    (_drop_checksum, "its header has no '-- checksum:' line"),
])
def test_every_edit_of_what_runs_or_what_the_summary_says_is_refused(edit, expected, cli, project, target_url, sql):
    plan = _bio_plan(cli, project)
    plan.write_text(edit(plan.read_text()))

    code, out, err = cli("apply")

    assert code == 1
    assert err.startswith(f"error: migrations/{plan.name}: {expected}"), err
    _nothing_applied(sql, target_url)


def test_an_edit_that_leaves_the_declared_state_is_not_rewritten(cli, project, target_url, sql):
    plan = _bio_plan(cli, project)
    edited = plan.read_text() + "\nCREATE INDEX users_bio_idx ON users (bio);\n"
    plan.write_text(edited)

    code, out, err = cli("rehearse", f"migrations/{plan.name}")

    assert code == 1
    assert "still differs: index public.users_bio_idx" in err
    # what migra would still do, read only because the snapshot saw a difference
    assert 'still to do: drop index if exists "public"."users_bio_idx"' in err
    assert err.strip().splitlines()[-1].startswith("error: the plan does not reach the declared state")
    assert plan.read_text() == edited
    assert cli("apply")[0] == 1
    _nothing_applied(sql, target_url)


def test_rehearse_keeps_data_steps_and_the_approval_only_for_unchanged_statements(cli, project, target_url, sql):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'Org')")
    (project / "data").mkdir()
    (project / "data" / "names.sql").write_text("UPDATE organizations SET name = upper(name);\n")
    org = project / "schema" / "010_organizations.sql"
    org.write_text(org.read_text().replace("    created_at  timestamptz NOT NULL DEFAULT now()\n", "").replace(
        "name        text NOT NULL,", "name        text NOT NULL"))
    assert cli("plan", "--as-of", AS_OF, "--name", "drop", "--data-before", "data/names.sql")[0] == 0
    plan = sorted((project / "migrations").glob("*_drop.sql"))[-1]
    plan.write_text(plan.read_text().replace("-- destructive-approved: no", "-- destructive-approved: yes"))

    code, out, err = cli("rehearse", f"migrations/{plan.name}")  # unchanged: the approval stands
    assert code == 0, err
    text = plan.read_text()
    assert "-- destructive-approved: yes" in text
    assert "-- DATA STEP data (before the schema changes, from data/names.sql): hand-written" in text

    plan.write_text(text.replace("upper(name)", "lower(name)"))
    code, out, err = cli("rehearse", f"migrations/{plan.name}")  # changed: approve again
    assert code == 0, err
    assert "-- destructive-approved: no" in plan.read_text() and "was reset to no" in err
    assert f"warning: migrations/{plan.name}: '-- destructive-approved:' was reset to no" in err
    assert cli("apply")[0] == 1  # the destructive drop is not approved any more
    assert cli("apply", "--allow-destructive")[0] == 0
    assert sql(target_url, "SELECT name FROM organizations")[0][0] == "org"


def test_an_edited_rollback_plan_is_refused(cli, project, target_url, sql):
    plan = _bio_plan(cli, project)
    assert cli("apply")[0] == 0
    reverse = project / "migrations" / "rollback" / plan.name
    reverse.write_text(reverse.read_text() + f"\n{GRANT}\n")

    code, out, err = cli("rollback", "--allow-destructive")

    assert code == 1
    assert err.startswith(f"error: migrations/rollback/{plan.name}: statement 2 (GRANT ALL ON TABLE users TO PUBLIC) "
                          f"was added after its rehearsal"), err
    assert _count(sql, target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 1
    assert _public_grants(sql, target_url) == 0


@pytest.mark.parametrize("which, expected", [
    ("rollback", "a rollback plan is rehearsed with its plan"),
    ("applied", "already applied to"),
    ("elsewhere", "not a plan file in migrations/"),
])
def test_rehearse_refuses_what_it_cannot_prove(which, expected, cli, project, target_url, tmp_path):
    plan = _bio_plan(cli, project)
    if which == "applied":
        assert cli("apply")[0] == 0
    path = {"rollback": f"migrations/rollback/{plan.name}", "applied": f"migrations/{plan.name}",
            "elsewhere": str(tmp_path / plan.name)}[which]
    if which == "elsewhere":
        (tmp_path / plan.name).write_text(plan.read_text())
    before = plan.read_text()

    code, out, err = cli("rehearse", path)

    assert code == 1 and expected in err, err
    assert plan.read_text() == before


def test_an_edited_plan_cannot_act_outside_the_scratch_space_while_it_is_rehearsed(cli, project, target_url, sql,
                                                                                 pg_server_url):
    """The rehearsal of a hand-edited plan runs before anyone reviews the edit: as the build role."""
    plan = _bio_plan(cli, project)
    pwned = f"/tmp/reconcile-pwned-{uuid.uuid4().hex[:8]}"
    plan.write_text(plan.read_text() + f"\nCOPY (SELECT 1) TO PROGRAM 'touch {pwned}';\n"
                                       f"ALTER ROLE CURRENT_USER SET work_mem = '1GB';\n")
    settings = sql(pg_server_url, "SELECT count(*) FROM pg_db_role_setting")[0][0]

    code, out, err = cli("rehearse", f"migrations/{plan.name}")  # the CI role here is a superuser

    assert code == 1 and "the plan fails on a copy of the target" in err and "external program" in err, err
    assert not os.path.exists(pwned)
    assert sql(pg_server_url, "SELECT count(*) FROM pg_db_role_setting")[0][0] == settings
    _nothing_applied(sql, target_url)


def test_a_statement_ending_in_a_line_comment_keeps_its_own_semicolon(cli, project, target_url, sql):
    """A data step whose last line is a comment: its ';' goes on a line of its own, else it would be
    commented out and the next statement swallowed into this one."""
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'org')")
    (project / "data").mkdir()
    (project / "data" / "names.sql").write_text("UPDATE organizations SET name = upper(name) -- shout\n;\n")
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("created_at       timestamptz NOT NULL DEFAULT now()\n);",
                                               "created_at       timestamptz NOT NULL DEFAULT now(),\n    bio text\n);"))

    assert cli("plan", "--as-of", AS_OF, "--data-before", "data/names.sql")[0] == 0
    code, out, err = cli("apply")

    assert code == 0, err
    assert sql(target_url, "SELECT name FROM organizations")[0][0] == "ORG"
    assert _count(sql, target_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'bio'") == 1
