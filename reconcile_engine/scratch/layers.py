"""Stage 3, building the declared state: template databases of its first layer (schema/ and
partitions/, the tables: most of a build's time), kept on a scratch server reconcile owns and keyed by
content, so that a change to a view or a policy is built from the unchanged tables with CREATE DATABASE
... TEMPLATE instead of from nothing.

Only on a server that holds nothing but scratch space (scratch.mode server or embedded, or the embedded
default target's own server): a template database lives on after the run. What the declared files make
in it belongs to a role that lives on too (OWNER_ROLE, no login, no rights of its own); each run's build
role is made a member of it for the run and builds as it, so that dropping the build role at the end
leaves the template whole.

A layer is never trusted blindly: its key is everything that shapes it (the layer's files as rendered,
the server's version, the target's default privileges and external schemas, the engine's source); a
database made from it must show the catalog snapshot recorded when it was made (else it is built from
nothing, and the layer forgotten); and a layer that cannot be read, found or made is no error, only a
full build.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg2

from ..config import Config
from ..connections import connected, describe
from ..sqltext import quote_ident
from .desired_cache import key_inputs
from .leftovers import like_prefix

log = logging.getLogger(__name__)

LAYER_FOLDERS = ("schema", "partitions")  # the first layer: load order is FOLDERS (declared/files.py)
LAYER_PREFIX = "reconcile_layer_"
OWNER_ROLE = "reconcile_scratch_owner"
KEPT_LAYERS = 4  # per project: first layers and rehearsed states together
# A layer no run of any project has used for this long is dropped (its project folder may be gone).
UNUSED_FOR = dt.timedelta(days=7)


@dataclasses.dataclass(frozen=True)
class Layer:
    key: str
    database: str
    fingerprint: str  # the catalog snapshot's, when it was made
    pending_stubs: list  # inert.InertFunctions.pending(): functions still stubbed in it
    defaults_set: list  # indexes of the target's default privileges adopted in it (prepare)


def first_layer(sources) -> int:
    """How many of the declared sources (in load order) make the first layer."""
    count = 0
    for source in sources:
        if source.display.replace("\\", "/").split("/", 1)[0] not in LAYER_FOLDERS:
            break
        count += 1
    return count


class LayerStore:
    """The first layers made for one project on one scratch server: a JSON record per layer in the
    project's cache folder, and its template database on the server."""

    def __init__(self, folder: Path, admin_url: str, connect_timeout_s: int):
        self.folder = folder
        self.admin_url = admin_url
        self.server_id = describe(admin_url)
        self.connect_timeout_s = connect_timeout_s

    @classmethod
    def for_server(cls, config: Config, server) -> "LayerStore | None":
        """The store for `server` (a ScratchServer), or None when the server is not one reconcile owns,
        or the build role cannot be made a member of OWNER_ROLE."""
        if server.same_server_as_target and server.embedded is None:
            return None
        store = cls(config.cache_dir / "layers", server.admin_url,
                    config.timeouts.connect_timeout_s)
        if server.builder is not None and not store._join_owner(server.builder.name):
            return None
        store._sweep()
        return store

    def _sweep(self) -> None:
        """Drop the layers nobody used for UNUSED_FOR (each says when it was last used in its COMMENT;
        one that says nothing readable is left alone)."""
        try:
            with connected(self.admin_url, self.connect_timeout_s) as conn, conn.cursor() as cur:
                cur.execute("SELECT d.datname, shobj_description(d.oid, 'pg_database') FROM pg_database d "
                            "WHERE d.datname LIKE %s", (like_prefix(LAYER_PREFIX),))
                rows = cur.fetchall()
        except psycopg2.Error:
            return
        now = dt.datetime.now(dt.timezone.utc)
        for name, comment in rows:
            try:
                used = dt.datetime.fromisoformat(json.loads(comment)["reconcile_layer_used"])
            except (TypeError, ValueError, KeyError):
                continue
            if used.tzinfo is not None and now - used > UNUSED_FOR:
                log.info("dropped the template layer %s, unused since %s", name, used.date().isoformat())
                self._drop(name)

    def _mark_used(self, cur, name: str) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        cur.execute(f"COMMENT ON DATABASE {quote_ident(name)} IS %s", (json.dumps({"reconcile_layer_used": stamp}),))

    def _join_owner(self, builder: str) -> bool:
        try:
            with connected(self.admin_url, self.connect_timeout_s) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OWNER_ROLE,))
                if cur.fetchone() is None:
                    try:
                        cur.execute(f"CREATE ROLE {quote_ident(OWNER_ROLE)} NOLOGIN NOSUPERUSER NOCREATEDB "
                                    f"NOCREATEROLE NOREPLICATION NOBYPASSRLS")
                    except psycopg2.errors.DuplicateObject:
                        pass  # another run made it meanwhile
                cur.execute(f"GRANT {quote_ident(OWNER_ROLE)} TO {quote_ident(builder)}")
                cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                if not cur.fetchone()[0]:  # to give it databases, and drop them, the admin must be able to be it
                    cur.execute(f"GRANT {quote_ident(OWNER_ROLE)} TO CURRENT_USER")
            return True
        except psycopg2.Error as exc:
            log.info("template layers are not used: cannot make the build role a member of %s (%s)",
                     OWNER_ROLE, str(exc).strip().splitlines()[0])
            return False

    def key(self, config: Config, environment, layer_sources) -> str:
        with connected(self.admin_url, self.connect_timeout_s) as conn, conn.cursor() as cur:
            cur.execute("SELECT version()")
            version = cur.fetchone()[0]
        inputs = key_inputs(config, version, environment.privileges_digest())
        digest = hashlib.sha256()
        for source in layer_sources:
            digest.update(source.display.encode() + b"\0" + source.sql.encode() + b"\0")
        inputs["layer"] = digest.hexdigest()
        inputs["external"] = hashlib.sha256(environment.external_sql.encode()).hexdigest()
        inputs["external_files"] = [[s.display, s.sql] for s in environment.external_files]
        inputs["extensions_on_target"] = [list(e) for e in environment.extensions]
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    @staticmethod
    def state_key(fingerprint: str, environment) -> str:
        """The key of a whole state (a rehearsal's copy once the plan ran on it): its catalog snapshot's
        fingerprint, and what the target gave the scratch database (default privileges, external
        schemas, extensions), which the snapshot does not all show."""
        inputs = {"state": fingerprint, "privileges": environment.privileges_digest(),
                  "external": hashlib.sha256(environment.external_sql.encode()).hexdigest(),
                  "extensions_on_target": [list(e) for e in environment.extensions]}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def _record(self, key: str) -> Path:
        return self.folder / f"layer-{key}.json"

    def find(self, key: str) -> Layer | None:
        try:
            entry = json.loads(self._record(key).read_text(encoding="utf-8"))
            layer = Layer(entry["key"], entry["database"], entry["fingerprint"], entry["pending_stubs"],
                          [int(i) for i in entry["defaults_set"]])
            if layer.key != key or entry.get("server") != self.server_id or \
                    layer.database != self.database_name(key):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        try:
            with connected(self.admin_url, self.connect_timeout_s) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (layer.database,))
                if cur.fetchone() is None:
                    self._record(key).unlink(missing_ok=True)
                    return None
                self._mark_used(cur, layer.database)
        except psycopg2.Error:
            return None
        try:
            os.utime(self._record(key))  # recently used: the last to be pruned
        except OSError:
            pass
        return layer

    @staticmethod
    def database_name(key: str) -> str:
        return f"{LAYER_PREFIX}{key[:24]}"

    def keep_state(self, key: str, built: str, fingerprint: str) -> bool:
        """`built` (a scratch database no session is connected to, whose snapshot is `fingerprint`)
        renamed to be the kept state of `key` and recorded, unless one of that key is kept already (not
        dropped for it: every DROP DATABASE makes the server checkpoint at once). Returns whether it was
        (it is then no longer the caller's to drop)."""
        if self.find(key) is not None or not self._make(key, built, rename=True):
            return False
        self._record_entry(key, {"kind": "state", "fingerprint": fingerprint, "pending_stubs": [], "defaults_set": []})
        return True

    def keep_layer(self, key: str, built: str, pending_stubs: list, defaults_set: list,
                   fingerprint_of: Callable[[str], str]) -> threading.Thread | None:
        """A template of `built` (a scratch database no session is connected to) made as the layer of
        `key`. Its snapshot is read from the template (`fingerprint_of(name)` gives its fingerprint) on
        a thread of its own that then records it, so that `built` goes on being loaded meanwhile (at
        10,000 tables that snapshot is seconds of a plan). Returns the thread, for the caller to join
        before the run ends; None when no template was made."""
        if not self._make(key, built, rename=False):
            return None
        name = self.database_name(key)

        def read_and_record() -> None:
            try:
                fingerprint = fingerprint_of(name)
            except Exception as exc:  # noqa: BLE001 (unrecorded, it is dropped when next made; it only saves time)
                log.info("a template of the declared state was not kept: its snapshot could not be read (%s)",
                         str(exc).strip().splitlines()[0] if str(exc) else exc)
                return
            self._record_entry(key, {"kind": "layer", "fingerprint": fingerprint, "pending_stubs": pending_stubs,
                                     "defaults_set": defaults_set})

        recording = threading.Thread(target=read_and_record, name=f"record {name}", daemon=True)
        recording.start()
        return recording

    def _make(self, key: str, built: str, *, rename: bool) -> bool:
        """The database of `key`: `built` renamed, or a copy of it (CREATE DATABASE ... TEMPLATE)."""
        name = self.database_name(key)
        try:
            with connected(self.admin_url, self.connect_timeout_s) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is not None:  # one left unrecorded
                    cur.execute(f"DROP DATABASE {quote_ident(name)} WITH (FORCE)")
                if rename:
                    cur.execute(f"ALTER DATABASE {quote_ident(built)} RENAME TO {quote_ident(name)}")
                else:
                    cur.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(built)}")
                self._mark_used(cur, name)
        except psycopg2.Error as exc:  # another run making the same one, say: it only saves time
            log.info("a template of the declared state was not kept: %s", str(exc).strip().splitlines()[0])
            return False
        return True

    def _record_entry(self, key: str, entry: dict) -> None:
        """Record the database of `key` (entry: its kind, fingerprint, pending stubs, defaults set)."""
        entry = {"key": key, "database": self.database_name(key), "server": self.server_id, **entry}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".layer-", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(entry, out)
            os.replace(temporary, self._record(key))
        except OSError:
            return
        self._prune()

    def handed_over(self, key: str) -> None:
        """A kept state that a rehearsal's copy has taken over (renamed, ScratchDatabase.take_over): no
        longer kept under its key."""
        self._record(key).unlink(missing_ok=True)

    def forget(self, key: str) -> None:
        """A layer that did not show its recorded snapshot: dropped, so it is made again."""
        self._record(key).unlink(missing_ok=True)
        self._drop(self.database_name(key))

    def _drop(self, name: str) -> None:
        try:
            with connected(self.admin_url, self.connect_timeout_s) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        except psycopg2.Error:
            pass

    def _prune(self) -> None:
        records = sorted(self.folder.glob("layer-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in records[KEPT_LAYERS:]:
            try:
                entry = json.loads(stale.read_text(encoding="utf-8"))
                if entry.get("server") == self.server_id and str(entry.get("database", "")).startswith(LAYER_PREFIX):
                    self._drop(entry["database"])
            except (OSError, ValueError):
                pass
            stale.unlink(missing_ok=True)
