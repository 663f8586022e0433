"""Stage 2a: the temporary login role that builds and rehearses in scratch databases.

Declared files are untrusted input, and the scratch databases often live on the target's own server,
reached with the deploy role. So what they hold runs as a role made for the run alone: no superuser,
no CREATEDB, no CREATEROLE, no REPLICATION, no BYPASSRLS, owner of the run's scratch databases and of
nothing else; its random password reaches the server only as a SCRAM verifier (never in a log), it
expires within hours, and it is dropped when the run ends, on Ctrl-C and SIGTERM too; its COMMENT
names the run that made it, so that when a run is killed with SIGKILL the next one drops it
(leftovers.py). Whatever a declared statement could still do, it can do only inside reconcile's
scratch space.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import secrets
from urllib.parse import quote, urlsplit

import psycopg2

from ..connections import connect, connected, describe, first_line, with_database, without_credentials
from ..errors import DatabaseError, ScratchError
from ..sqltext import quote_ident
# The role's name prefix and its VALID UNTIL are what the sweep of leftovers goes by, so they live there.
from .leftovers import ROLE_PREFIX, VALID_FOR, identity_comment

SCRAM_ITERATIONS = 4096


@dataclasses.dataclass(frozen=True)
class BuildRole:
    name: str
    password: str = dataclasses.field(repr=False)

    def url(self, server_url: str, database: str) -> str:
        """The server of `server_url` (host, port, options), as this role, in `database`."""
        parts = urlsplit(without_credentials(with_database(server_url, database)))
        return parts._replace(netloc=f"{quote(self.name)}:{quote(self.password)}@{parts.netloc}").geturl()


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, 7677), made here so that the
    password itself is never sent: CREATE ROLE statements can end up in the server's log."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    encode = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return (f"SCRAM-SHA-256${iterations}:{encode(salt)}$"
            f"{encode(hashlib.sha256(client_key).digest())}:{encode(server_key)}")


def may_create_roles(admin_url: str, connect_timeout_s: int) -> tuple[bool, bool]:
    """(superuser, may create roles) for the role of `admin_url`."""
    with connected(admin_url, connect_timeout_s) as conn, conn.cursor() as cur:
        cur.execute("SELECT rolsuper, rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
        return cur.fetchone() or (False, False)


def create_build_role(admin_url: str, superuser: bool, connect_timeout_s: int) -> BuildRole:
    role = BuildRole(f"{ROLE_PREFIX}{os.getpid()}_{secrets.token_hex(4)}", secrets.token_hex(24))
    until = (dt.datetime.now(dt.timezone.utc) + VALID_FOR).isoformat()
    # One transaction: the role never exists without the comment that says whose it is.
    conn = connect(admin_url, connect_timeout_s, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE ROLE {quote_ident(role.name)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT "
                f"NOREPLICATION NOBYPASSRLS PASSWORD %s VALID UNTIL %s",
                (scram_verifier(role.password), until),
            )
            cur.execute(f"COMMENT ON ROLE {quote_ident(role.name)} IS %s", (identity_comment(),))
            if not superuser:
                # CREATE DATABASE ... OWNER needs the creator to be able to become the owner.
                cur.execute(f"GRANT {quote_ident(role.name)} TO CURRENT_USER")
        conn.commit()
    except psycopg2.Error as exc:
        raise ScratchError(f"cannot create the temporary role that builds the declared state on "
                           f"{describe(admin_url)}: {first_line(exc)}") from exc
    finally:
        conn.close()
    return role


def check_login(role: BuildRole, admin_url: str, database: str, connect_timeout_s: int) -> None:
    try:
        connect(role.url(admin_url, database), connect_timeout_s).close()
    except DatabaseError as exc:
        raise ScratchError(
            f"the temporary role that builds the declared state cannot log in to {describe(admin_url)}: "
            f"{first_line(exc.__cause__ or exc)}; the server must accept password logins from this host "
            f"for new roles (pg_hba.conf), or set scratch.mode to server or embedded in reconcile.yaml"
        ) from exc


def drop_build_role(admin_url: str, role: BuildRole, connect_timeout_s: int) -> None:
    conn = connect(admin_url, connect_timeout_s)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS {quote_ident(role.name)}")
    except psycopg2.Error as exc:
        raise ScratchError(f"cannot drop the temporary role {role.name} on {describe(admin_url)}: "
                           f"{first_line(exc)}; drop it by hand (it expires within {VALID_FOR})") from exc
    finally:
        conn.close()

