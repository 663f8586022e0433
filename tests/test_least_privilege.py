"""Least privilege: apply needs no superuser for the shipped schema; plan and drift on the target's
server need CREATEDB and CREATEROLE (for the temporary build role), never a superuser; drift needs
only to read the catalogs (and the history table), with its scratch database on another server."""

import uuid
from urllib.parse import urlsplit

import pytest

from reconcile_engine.cli import run


def _as_role(url, role, password):
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{role}:{password}@{host}{':' + str(parts.port) if parts.port else ''}"
    return parts._replace(netloc=netloc).geturl()


@pytest.fixture
def roles(pg_server_url, sql):
    """A deployer (owns the database, may create scratch databases and the build role, no superuser),
    and a reader."""
    suffix = uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    deployer, reader = f"deployer_{suffix}", f"reader_{suffix}"
    sql(pg_server_url, f"CREATE ROLE {deployer} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'")
    sql(pg_server_url, f"CREATE ROLE {reader} LOGIN PASSWORD '{password}'")
    database = f"rt_owned_{suffix}"
    sql(pg_server_url, f"CREATE DATABASE {database} OWNER {deployer} TEMPLATE template0")
    target = urlsplit(pg_server_url)._replace(path="/" + database).geturl()
    yield {"deployer": _as_role(target, deployer, password), "reader": _as_role(target, reader, password),
           "reader_role": reader, "target": target}
    sql(pg_server_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    sql(pg_server_url, f"DROP ROLE IF EXISTS {deployer}")
    sql(pg_server_url, f"DROP ROLE IF EXISTS {reader}")


def test_apply_and_drift_without_superuser(capsys, project, roles, sql, pg_server_url):
    deployer = roles["deployer"]
    assert not sql(deployer, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")[0][0]
    for args in (["plan", "--as-of", "2026-06-01"], ["apply"], ["drift", "--as-of", "2026-06-01"]):
        code = run([*args, "--project", str(project), "--database-url", deployer])
        captured = capsys.readouterr()
        assert code == 0, (args, captured.err)

    # The reader may only read: the catalogs, and the history once granted.
    sql(deployer, f"GRANT USAGE ON SCHEMA reconcile TO {roles['reader_role']}")
    sql(deployer, f"GRANT SELECT ON reconcile.history TO {roles['reader_role']}")
    (project / "reconcile.yaml").write_text(f"scratch:\n  mode: server\n  server_url: '{pg_server_url}'\n")
    code = run(["drift", "--as-of", "2026-06-01", "--project", str(project), "--database-url", roles["reader"]])
    captured = capsys.readouterr()

    assert code == 0, captured.err
    assert "In sync" in captured.out
