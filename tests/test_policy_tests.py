"""`reconcile test`: the shipped policy tests pass, and a broken policy fails with the assertion named."""

import pytest

from reconcile_engine.cli import run


@pytest.fixture
def test_cmd(capsys, project, pg_server_url):
    """reconcile test on the test server (scratch.mode: server), so it runs on both CI servers."""
    (project / "reconcile.yaml").write_text(f"scratch:\n  mode: server\n  server_url: '{pg_server_url}'\n")

    def call(*args):
        code = run(["test", "--project", str(project), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_shipped_policy_tests_pass(test_cmd):
    code, out, err = test_cmd()

    assert (code, err) == (0, "")
    assert "13 passed, 0 failed" in out
    assert "FAIL" not in out


def test_a_policy_that_lets_everything_through_fails_the_tests(test_cmd, project):
    (project / "policies" / "users.sql").write_text(
        "ALTER TABLE users ENABLE ROW LEVEL SECURITY;\nALTER TABLE users FORCE ROW LEVEL SECURITY;\n"
        "CREATE POLICY org_isolation ON users USING (true);\n"
    )

    code, out, err = test_cmd()

    assert code == 1
    assert "FAIL policies/tests/org_isolation.yaml: org A sees only its users" in out
    assert "expected rows [['a1@a.example'], ['a2@a.example']], got [['a1@a.example'], ['a2@a.example'], " \
           "['b1@b.example']]" in out


def test_a_policy_on_the_wrong_setting_fails_the_tests(test_cmd, project):
    policy = project / "policies" / "learner_analytics.sql"
    policy.write_text(policy.read_text().replace("app.current_org_id", "app.org_id"))

    code, out, _ = test_cmd()

    assert code == 1
    assert "FAIL policies/tests/org_isolation.yaml: org A sees only its learner analytics" in out
    assert "12 passed, 1 failed" in out


def test_a_malformed_test_file_is_one_line(test_cmd, project):
    (project / "policies" / "tests" / "bad.yaml").write_text("role: app_user\ntests:\n  - sql: SELECT 1\n")

    code, out, err = test_cmd()

    assert code == 1
    assert err.strip() == ("error: policies/tests/bad.yaml: tests[1]: give exactly one of expect_rows, "
                           "expect_count, expect_error")


@pytest.mark.parametrize("role, expected", [
    ("postgres", "role: 'postgres' bypasses row-level security, so it cannot test it"),
    ("pg_execute_server_program", "role: 'pg_execute_server_program' has rights beyond the tables it is granted"),
])
def test_the_tests_role_may_not_be_one_with_more_rights(role, expected, test_cmd, project, pg_server_url, sql):
    """The build role is made able to become the tests' role: a superuser or predefined role is refused."""
    for path in (project / "policies" / "tests").glob("*.yaml"):
        path.write_text(path.read_text().replace("role: app_user", f"role: {role}"))

    code, out, err = test_cmd()

    assert code == 1
    assert err.startswith(f"error: policies/tests/org_isolation.yaml: {expected}") and len(err.splitlines()) == 1
    assert sql(pg_server_url, "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                              "WHERE r.rolname LIKE 'reconcile\\_build\\_%'")[0][0] == 0
