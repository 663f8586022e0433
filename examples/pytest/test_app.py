"""An application's tests on a database at the declared state, through the reconcile pytest plugin.

Each test asks for `reconcile_database_url`: its own copy of a database that the session built with
`reconcile plan` + `apply` (row-level security, the materialized view, this year's partitions), so it
writes what it likes and sees no other test's rows. Run from the repository's root:

    pytest examples/pytest/test_app.py --reconcile-project .
"""

import contextlib
import datetime as dt
import uuid

import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql

APP_TABLES = ("organizations", "users", "learner_analytics", "aggregated_analytics")


@pytest.fixture
def db(reconcile_database_url):
    conn = psycopg2.connect(reconcile_database_url)
    yield conn
    conn.close()


@pytest.fixture
def app_role(db):
    """The role the application connects as: no superuser, no BYPASSRLS, granted the tables (never the
    materialized view, which RLS does not cover). Roles belong to the whole server, not to this test's
    copy, so the name is unique and the role is dropped after the test."""
    role = sql.Identifier(f"example_app_{uuid.uuid4().hex[:12]}")
    with db, db.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS").format(role))
        cur.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))  # so that SET ROLE works without superuser
        cur.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
            sql.SQL(", ").join(map(sql.Identifier, APP_TABLES)), role))
    yield role
    db.rollback()
    with db, db.cursor() as cur:
        cur.execute(sql.SQL("DROP OWNED BY {}").format(role))  # its grants in this copy
        cur.execute(sql.SQL("DROP ROLE {}").format(role))


@contextlib.contextmanager
def as_tenant(db, role, org_id):
    """What the application does per request: one transaction as its role, with the organization in
    app.current_org_id (what every policy reads)."""
    with db, db.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(role))
        cur.execute("SELECT set_config('app.current_org_id', %s, true)", (org_id,))
        yield cur


def sign_up(db, role, name, emails):
    """An organization and its users, inserted as the application would; returns the organization's id."""
    org_id = str(uuid.uuid4())
    with as_tenant(db, role, org_id) as cur:
        cur.execute("INSERT INTO organizations (id, name) VALUES (%s, %s)", (org_id, name))
        for email in emails:
            cur.execute("INSERT INTO users (email, organization_id) VALUES (%s, %s) RETURNING id", (email, org_id))
            cur.execute("INSERT INTO learner_analytics (user_id, role_id, user_role, organization_id, data) "
                        "VALUES (%s, 'r1', 'learner', %s, '{\"skillsAcquired\": 3}')", (cur.fetchone()[0], org_id))
        year = dt.date.today().year  # lands in this year's partition, which the deploy made
        cur.execute("INSERT INTO aggregated_analytics (organization_id, user_role, period_start, period_end) "
                    "VALUES (%s, 'learner', %s, %s)", (org_id, dt.date(year, 1, 1), dt.date(year, 12, 31)))
    return org_id


def test_an_organization_sees_only_its_own_rows(db, app_role):
    acme = sign_up(db, app_role, "Acme", ["ann@acme.example", "bob@acme.example"])
    globex = sign_up(db, app_role, "Globex", ["gus@globex.example"])

    with as_tenant(db, app_role, acme) as cur:
        cur.execute("SELECT email FROM users ORDER BY email")
        assert cur.fetchall() == [("ann@acme.example",), ("bob@acme.example",)]
        cur.execute("SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM learner_analytics), "
                    "(SELECT count(*) FROM aggregated_analytics)")
        assert cur.fetchone() == (1, 2, 1)
    with as_tenant(db, app_role, globex) as cur:
        cur.execute("SELECT email FROM users")
        assert cur.fetchall() == [("gus@globex.example",)]
    with as_tenant(db, app_role, None) as cur:  # no organization set: nothing, and no error
        cur.execute("SELECT count(*) FROM users")
        assert cur.fetchone() == (0,)


def test_a_tenant_cannot_write_into_another_organization(db, app_role):
    acme = sign_up(db, app_role, "Acme", [])
    globex = sign_up(db, app_role, "Globex", ["gus@globex.example"])

    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="row-level security"):
        with as_tenant(db, app_role, acme) as cur:
            cur.execute("INSERT INTO users (email, organization_id) VALUES ('eve@acme.example', %s)", (globex,))
    with as_tenant(db, app_role, acme) as cur:
        cur.execute("UPDATE users SET email = 'stolen@acme.example' WHERE organization_id = %s", (globex,))
        assert cur.rowcount == 0  # another organization's rows are not even visible to update


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_starts_from_the_declared_state(db, app_role, run):
    """Both runs sign up the same address, which is UNIQUE: the second would fail if it saw the first's rows."""
    with db, db.cursor() as cur:
        cur.execute("SELECT count(*) FROM reconcile.history")
        assert cur.fetchone() == (1,)  # the session's one plan, applied as a deploy applies it
    sign_up(db, app_role, "Initech", ["peter@initech.example"])
