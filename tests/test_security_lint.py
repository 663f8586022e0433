"""The security lint: each rule fires on a minimal bad schema, can be switched off with a reason, and
stays silent on the shipped schema."""

import pytest

from reconcile_engine.cli import run

BAD = {
    "tenant-table-without-rls": "CREATE TABLE notes (id int PRIMARY KEY, organization_id text NOT NULL);",
    "view-bypasses-rls": (
        "CREATE TABLE notes (id int PRIMARY KEY, organization_id text NOT NULL);\n"
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY; ALTER TABLE notes FORCE ROW LEVEL SECURITY;\n"
        "CREATE POLICY p ON notes USING (organization_id = current_setting('app.org', true));\n"
        "CREATE VIEW all_notes AS SELECT * FROM notes;"
    ),
    "matview-exposes-rls-table": (
        "CREATE TABLE notes (id int PRIMARY KEY, organization_id text NOT NULL);\n"
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY; ALTER TABLE notes FORCE ROW LEVEL SECURITY;\n"
        "CREATE POLICY p ON notes USING (organization_id = current_setting('app.org', true));\n"
        "CREATE MATERIALIZED VIEW note_counts AS SELECT organization_id, count(*) AS n FROM notes GROUP BY 1;\n"
        "GRANT SELECT ON note_counts TO PUBLIC;"
    ),
    "security-definer-without-search-path": (
        "CREATE FUNCTION whoami() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$ SELECT current_user::text $$;"
    ),
    "missing-primary-key": "CREATE TABLE events (at timestamptz NOT NULL);",
    "current-setting-without-missing-ok": (
        "CREATE TABLE notes (id int PRIMARY KEY, organization_id text NOT NULL);\n"
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY; ALTER TABLE notes FORCE ROW LEVEL SECURITY;\n"
        "CREATE POLICY p ON notes USING (organization_id = current_setting('app.org'));"
    ),
}
OBJECTS = {
    "tenant-table-without-rls": "public.notes",
    "view-bypasses-rls": "public.all_notes",
    "matview-exposes-rls-table": "public.note_counts",
    "security-definer-without-search-path": "public.whoami()",
    "missing-primary-key": "public.events",
    "current-setting-without-missing-ok": "public.notes.p",
}


def _lint(capsys, folder, url):
    code = run(["lint", "--project", str(folder), "--database-url", url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _project(tmp_path, sql, config=""):
    folder = tmp_path / "lintme"
    (folder / "schema").mkdir(parents=True)
    (folder / "schema" / "a.sql").write_text(sql)
    (folder / "reconcile.yaml").write_text(config)
    return folder


@pytest.mark.parametrize("rule", sorted(BAD))
def test_rule_fires_on_a_minimal_bad_schema(capsys, tmp_path, target_url, rule):
    code, out, err = _lint(capsys, _project(tmp_path, BAD[rule]), target_url)

    assert code == 2, err
    assert f"declared state: {rule}: {OBJECTS[rule]}:" in out


@pytest.mark.parametrize("rule", sorted(BAD))
def test_rule_can_be_switched_off_for_an_object_with_a_reason(capsys, tmp_path, target_url, rule):
    config = f"lint:\n  ignore:\n    - {{rule: {rule}, object: '{OBJECTS[rule]}', reason: checked by hand}}\n"

    code, out, err = _lint(capsys, _project(tmp_path, BAD[rule], config), target_url)

    assert f"{rule}: {OBJECTS[rule]}" not in out


def test_ignore_without_a_reason_is_refused(capsys, tmp_path, target_url):
    config = "lint:\n  ignore:\n    - {rule: missing-primary-key, object: public.events}\n"

    code, out, err = _lint(capsys, _project(tmp_path, BAD["missing-primary-key"], config), target_url)

    assert code == 1 and "lint.ignore[1].reason" in err


def test_shipped_schema_is_silent(capsys, project, target_url):
    code, out, err = _lint(capsys, project, target_url)

    assert (code, err) == (0, "")
    assert "No findings in the declared state" in out


def test_plan_shows_lint_findings_as_warnings(capsys, tmp_path, target_url):
    folder = _project(tmp_path, BAD["missing-primary-key"])

    code = run(["plan", "--project", str(folder), "--database-url", target_url, "--dry-run"])
    err = capsys.readouterr().err

    assert code == 0
    assert "warning: missing-primary-key: public.events: has no primary key" in err


PRISMA_TABLE = 'CREATE TABLE "Note" (id int PRIMARY KEY, "organizationId" text NOT NULL);'


def test_tenant_columns_name_the_columns_that_mark_a_tenant_s_rows(capsys, tmp_path, target_url):
    """Prisma writes "organizationId": by default it is not a tenant column, so the table goes unchecked;
    named in lint.tenant_columns, its table without row-level security is a finding naming the column."""
    code, out, _ = _lint(capsys, _project(tmp_path, PRISMA_TABLE), target_url)
    assert code == 0 and "tenant-table-without-rls" not in out

    config = "lint:\n  tenant_columns: [organization_id, organizationId]\n"
    code, out, err = _lint(capsys, _project(tmp_path / "named", PRISMA_TABLE, config), target_url)

    assert code == 2, err
    assert 'declared state: tenant-table-without-rls: public.Note: has "organizationId" but row-level security ' \
           'is not enabled' in out


@pytest.mark.parametrize("value, message", [
    ("[]", "lint.tenant_columns: name at least one column"),
    ("organization_id", "lint.tenant_columns"),
    ("[1, 2]", "lint.tenant_columns"),
])
def test_tenant_columns_must_be_a_list_of_names(capsys, tmp_path, target_url, value, message):
    folder = _project(tmp_path, PRISMA_TABLE, f"lint:\n  tenant_columns: {value}\n")
    code, out, err = _lint(capsys, folder, target_url)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err


def test_a_tenant_column_is_only_ever_a_name(capsys, tmp_path, target_url):
    """The list is untrusted input (a pull request writes reconcile.yaml): it is passed to the catalog
    query as a value, so SQL in it is a column name that no table has."""
    config = "lint:\n  tenant_columns: [\"x') OR true; DROP TABLE \\\"Note\\\"; --\"]\n"
    code, out, err = _lint(capsys, _project(tmp_path, PRISMA_TABLE, config), target_url)
    assert code == 0, err
    assert "No findings" in out


def test_a_materialized_view_over_an_rls_table_is_a_finding_only_when_someone_may_read_it(capsys, tmp_path,
                                                                                          target_url):
    granted = BAD["matview-exposes-rls-table"]
    code, out, _ = _lint(capsys, _project(tmp_path, granted), target_url)
    assert code == 2
    assert ("matview-exposes-rls-table: public.note_counts: reads public.notes, which has row-level security, "
            "and every role may select from it") in out

    not_granted = granted.replace("GRANT SELECT ON note_counts TO PUBLIC;", "")
    code, out, _ = _lint(capsys, _project(tmp_path / "owner_only", not_granted), target_url)
    assert code == 0 and "matview-exposes-rls-table" not in out
