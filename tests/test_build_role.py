"""Stage tests for the temporary build role: what scratch databases hold runs as a role with no rights
beyond them, made for the run and gone after it, whatever happened."""

import datetime as dt
import uuid
from urllib.parse import urlsplit

import psycopg2
import pytest

from reconcile_engine.scratch.build_role import ROLE_PREFIX, scram_verifier
from reconcile_engine.config import load_config
from reconcile_engine.scratch.databases import ScratchDatabase
from reconcile_engine.scratch.space import scratch_space
from reconcile_engine.servers import Target


def _build_roles(sql, url):
    return [r[0] for r in sql(url, "SELECT rolname FROM pg_roles WHERE rolname LIKE 'reconcile\\_build\\_%' "
                                   "ORDER BY 1")]


def test_the_build_role_owns_the_scratch_databases_and_nothing_else(tmp_path, target_url, sql):
    config = load_config(tmp_path)
    with scratch_space(config, Target(target_url)) as server, ScratchDatabase(server, "desired") as scratch:
        role = server.builder.name
        url = scratch.url  # made when first used
        [attributes] = sql(target_url, "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
                                       "rolcanlogin, rolvaliduntil FROM pg_roles WHERE rolname = %s", (role,))
        owner = sql(target_url, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                    (scratch.name,))[0][0]
        member_of = sql(target_url, "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                                    "WHERE r.rolname = %s", (role,))[0][0]
        who = sql(url, "SELECT current_user")[0][0]
        assert role.startswith(ROLE_PREFIX)
        assert attributes[:6] == (False, False, False, False, False, True)
        assert dt.timedelta(0) < attributes[6] - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(hours=12)
        assert owner == role and who == role and member_of == 0
        with pytest.raises(psycopg2.Error, match="permission denied|must be"):
            sql(scratch.url, "CREATE DATABASE reconcile_should_not_exist")

    assert role not in _build_roles(sql, target_url)


def test_the_build_role_is_dropped_when_the_run_fails(tmp_path, target_url, sql):
    config = load_config(tmp_path)
    with pytest.raises(RuntimeError):
        with scratch_space(config, Target(target_url)) as server, ScratchDatabase(server, "desired"):
            role = server.builder.name
            raise RuntimeError("the run fails")
    assert role not in _build_roles(sql, target_url)


def test_roles_of_killed_runs_are_dropped_once_expired(tmp_path, target_url, sql):
    dead = f"{ROLE_PREFIX}0_{uuid.uuid4().hex[:8]}"
    alive = f"{ROLE_PREFIX}1_{uuid.uuid4().hex[:8]}"
    sql(target_url, f"CREATE ROLE {dead} LOGIN VALID UNTIL '2020-01-01'")
    sql(target_url, f"CREATE ROLE {alive} LOGIN VALID UNTIL 'infinity'")
    try:
        with scratch_space(load_config(tmp_path), Target(target_url)):
            pass
        roles = _build_roles(sql, target_url)
        assert dead not in roles and alive in roles  # another run's role, still valid, is left alone
    finally:
        sql(target_url, f"DROP ROLE IF EXISTS {dead}")
        sql(target_url, f"DROP ROLE IF EXISTS {alive}")


def test_the_password_reaches_the_server_only_as_a_scram_verifier(target_url, sql):
    role, password = f"rt_scram_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    verifier = scram_verifier(password)
    sql(target_url, f"CREATE ROLE {role} LOGIN PASSWORD %s", (verifier,))
    try:
        # Stored as given: the server took it for a verifier, not for a password to hash.
        assert sql(target_url, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))[0][0] == verifier
        parts = urlsplit(target_url)
        login = parts._replace(netloc=f"{role}:{password}@{parts.netloc.rpartition('@')[2]}").geturl()
        assert sql(login, "SELECT current_user")[0][0] == role  # where the server checks it, it matches
    finally:
        sql(target_url, f"DROP ROLE {role}")
