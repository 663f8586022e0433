"""Policy tests: prove tenant isolation on the declared state (policies/tests/*.yaml), like pgTAP tests
but readable by whoever writes the policy.

A test file:

    role: app_user              # the application's role (created NOLOGIN if missing); never BYPASSRLS
    setup: |                    # run as the owner first: the role's grants, as production has them
      GRANT SELECT, INSERT, UPDATE ON users TO app_user;
    fixtures:                   # rows, inserted as the owner (RLS does not apply to it here)
      organizations: [{id: org_a, name: A}, {id: org_b, name: B}]
    tests:
      - name: org A sees only its users
        settings: {app.current_org_id: org_a}
        sql: SELECT email FROM users ORDER BY email
        expect_rows: [[a@a.example]]      # or expect_count: 1, or expect_error: "row-level security"

Each test runs as the role, in a transaction that is rolled back, so tests do not see each other.
The file is rendered with jinja2 first: {{ year }} and {{ as_of }} place rows in today's partitions.

A test file is untrusted input like any declared file: `setup` holds definitions only (admission.py),
each test's `sql` holds queries only, and everything runs in a session of the run's build role
(buildrole.py), which owns the scratch database and may become the test's role, nothing more.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psycopg2
import psycopg2.extras
import yaml

from ..connections import connect, first_line
from ..declared.admission import admit, admit_queries
from ..errors import DeclaredStateError
from ..sqltext import jinja_environment, quote_ident

TESTS_FOLDER = Path("policies") / "tests"
FILE_KEYS = ("role", "setup", "fixtures", "tests")
TEST_KEYS = ("name", "settings", "sql", "expect_rows", "expect_count", "expect_error")


@dataclasses.dataclass(frozen=True)
class PolicyTest:
    name: str
    sql: str
    settings: dict
    expect_rows: list | None = None
    expect_count: int | None = None
    expect_error: str | None = None


@dataclasses.dataclass(frozen=True)
class PolicyTestFile:
    display: str
    role: str
    setup: str
    fixtures: dict  # table -> list of row mappings, in load order
    tests: tuple[PolicyTest, ...]


@dataclasses.dataclass(frozen=True)
class Outcome:
    file: str
    test: str
    passed: bool
    detail: str = ""


def _fail(display: str, message: str):
    raise DeclaredStateError(f"{display}: {message}")


def read_tests(project: Path, as_of) -> list[PolicyTestFile]:
    import jinja2  # loaded by the command that reads the tests, not by every one that imports Outcome

    folder = project / TESTS_FOLDER
    files = []
    for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
        display = str(path.relative_to(project))
        try:
            text = jinja_environment().from_string(path.read_text(encoding="utf-8")).render(
                as_of=as_of.isoformat(), year=as_of.year)
            raw = yaml.safe_load(text)
        except jinja2.TemplateError as exc:
            _fail(display, f"template error: {exc}")
        except yaml.YAMLError as exc:
            _fail(display, f"malformed YAML: {getattr(exc, 'problem', None) or exc}")
        if not isinstance(raw, dict):
            _fail(display, f"expected a mapping with keys {', '.join(FILE_KEYS)}")
        for key in raw:
            if key not in FILE_KEYS:
                _fail(display, f"unknown key {key!r} (known: {', '.join(FILE_KEYS)})")
        if not isinstance(raw.get("role"), str):
            _fail(display, "role: required, the role the tests run as")
        fixtures = raw.get("fixtures") or {}
        if not isinstance(fixtures, dict) or not all(isinstance(v, list) for v in fixtures.values()):
            _fail(display, "fixtures: expected a mapping of table -> list of rows")
        tests = []
        for number, item in enumerate(raw.get("tests") or [], 1):
            where = f"tests[{number}]"
            if not isinstance(item, dict):
                _fail(display, f"{where}: expected a mapping")
            for key in item:
                if key not in TEST_KEYS:
                    _fail(display, f"{where}: unknown key {key!r} (known: {', '.join(TEST_KEYS)})")
            if not isinstance(item.get("sql"), str):
                _fail(display, f"{where}: sql: required")
            admit_queries(item["sql"], f"{display}: {where}.sql")
            expectations = [k for k in ("expect_rows", "expect_count", "expect_error") if k in item]
            if len(expectations) != 1:
                _fail(display, f"{where}: give exactly one of expect_rows, expect_count, expect_error")
            tests.append(PolicyTest(
                name=str(item.get("name") or f"test {number}"), sql=item["sql"],
                settings={str(k): str(v) for k, v in (item.get("settings") or {}).items()},
                expect_rows=item.get("expect_rows"), expect_count=item.get("expect_count"),
                expect_error=item.get("expect_error"),
            ))
        if not tests:
            _fail(display, "tests: at least one test")
        if not isinstance(raw.get("setup") or "", str):
            _fail(display, "setup: expected SQL text (the role's grants)")
        admit(raw.get("setup") or "", f"{display}: setup")
        files.append(PolicyTestFile(display, raw["role"], raw.get("setup") or "", fixtures, tuple(tests)))
    return files


def _load_fixtures(cur, test_file: PolicyTestFile) -> None:
    """Rows inserted as the tables' owner; forced row-level security is lifted meanwhile (it applies
    to the owner too), in the same transaction."""
    for table, rows in test_file.fixtures.items():
        name = quote_ident(table)
        cur.execute("SELECT relforcerowsecurity FROM pg_class WHERE oid = to_regclass(%s)", (name,))
        forced = (cur.fetchone() or (False,))[0]
        if forced:
            cur.execute(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY")
        for row in rows:
            columns = ", ".join(quote_ident(c) for c in row)
            values = ", ".join(["%s"] * len(row))
            cur.execute(f"INSERT INTO {name} ({columns}) VALUES ({values})",
                        [psycopg2.extras.Json(v) if isinstance(v, (dict, list)) else v for v in row.values()])
        if forced:
            cur.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")


def _prepare_role(admin_url: str, test_file: PolicyTestFile, member: str | None) -> None:
    """The test's role: made NOLOGIN when missing; when it exists (a shared scratch server), it must
    be a plain role, since the build role (`member`) is made able to become it."""
    conn = connect(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT rolsuper OR rolbypassrls, rolcreaterole OR rolcreatedb OR rolreplication
                                  OR rolname LIKE 'pg\\_%%'
                                  OR EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid)
                           FROM pg_roles r WHERE rolname = %s""", (test_file.role,))
            row = cur.fetchone()
            if row is None:
                cur.execute(f"CREATE ROLE {quote_ident(test_file.role)} NOLOGIN")
            elif row[0]:
                raise DeclaredStateError(f"{test_file.display}: role: {test_file.role!r} bypasses row-level "
                                         f"security, so it cannot test it")
            elif row[1]:
                raise DeclaredStateError(f"{test_file.display}: role: {test_file.role!r} has rights beyond the "
                                         f"tables it is granted (an attribute, a predefined role or a membership); "
                                         f"name a plain application role")
            if member is not None:
                cur.execute(f"GRANT {quote_ident(test_file.role)} TO {quote_ident(member)}")
    except psycopg2.Error as exc:
        raise DeclaredStateError(f"{test_file.display}: role: cannot prepare {test_file.role!r}: {first_line(exc)}") from exc
    finally:
        conn.close()


def _normalize(rows) -> list:
    return [[str(v) if v is not None else None for v in row] for row in rows]


def _run_one(conn, role: str, test: PolicyTest) -> str | None:
    """None when the test passes, else what went wrong."""
    with conn.cursor() as cur:
        try:
            cur.execute(f"SET LOCAL ROLE {quote_ident(role)}")
            for key, value in test.settings.items():
                cur.execute("SELECT set_config(%s, %s, true)", (key, value))
            cur.execute(test.sql)
            rows = cur.fetchall() if cur.description else []
        except psycopg2.Error as exc:
            message = first_line(exc)
            if test.expect_error is not None:
                return None if test.expect_error.lower() in message.lower() else \
                    f"expected an error containing {test.expect_error!r}, got error: {message}"
            return f"expected success, got error: {message}"
    if test.expect_error is not None:
        return f"expected an error containing {test.expect_error!r}, got {len(rows)} row(s): {_normalize(rows)[:5]}"
    if test.expect_count is not None and len(rows) != test.expect_count:
        return f"expected {test.expect_count} row(s), got {len(rows)}: {_normalize(rows)[:5]}"
    if test.expect_rows is not None and _normalize(rows) != _normalize(test.expect_rows):
        return f"expected rows {_normalize(test.expect_rows)}, got {_normalize(rows)}"
    return None


def run_tests(url: str, admin_url: str, member: str | None, test_files: list[PolicyTestFile]) -> list[Outcome]:
    """Run every file's tests on the database at `url` (as the build role `member`, when there is one),
    which holds the declared state; `admin_url` reaches its server as a role that can make roles."""
    outcomes = []
    for test_file in test_files:
        _prepare_role(admin_url, test_file, member)
        conn = connect(url, autocommit=False)
        try:
            with conn.cursor() as cur:
                try:
                    if test_file.setup.strip():
                        cur.execute(test_file.setup)
                    _load_fixtures(cur, test_file)
                    cur.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", (test_file.role,))
                    row = cur.fetchone()
                except psycopg2.Error as exc:
                    raise DeclaredStateError(f"{test_file.display}: setup or fixtures failed: {first_line(exc)}") from exc
                if row[0]:
                    raise DeclaredStateError(f"{test_file.display}: role: {test_file.role!r} bypasses row-level "
                                             f"security, so it cannot test it")
            conn.commit()
            for test in test_file.tests:
                problem = _run_one(conn, test_file.role, test)
                conn.rollback()
                outcomes.append(Outcome(test_file.display, test.name, problem is None, problem or ""))
        finally:
            conn.close()
    return outcomes
