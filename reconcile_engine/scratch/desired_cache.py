"""Between stages 1 and 3: a cache of the desired state's catalog snapshot, so unchanged declared
files are not built again in a scratch database for every drift check.

An entry is keyed by everything that shapes the snapshot: the declared files' content and the
as-of date (DesiredState.content_hash), the full version of the server that builds the scratch
database, the managed schemas, ignore globs, external schemas, roles, extensions and ignored lint
findings from reconcile.yaml, the schemas, extensions and roles inferred from the declared files
(declared/inference.py), the target's default privileges and grants (the lint sees them), and the
engine's own source. A changed input is a different key, never a stale entry.

A cached snapshot is only a shortcut to "nothing to do": when the target differs from it, the
commands build the desired state as before, so a wrong entry could not produce a wrong plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from ..checks.security_rules import RuleFinding
from ..config import Config
from ..connections import connected
from ..declared.files import DesiredState
from ..inspection.snapshot import CatalogSnapshot
from ..servers import Target, pg_dump_path
from ..version import engine_digest

KEPT_ENTRIES = 20
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class CachedDesiredState:
    snapshot: CatalogSnapshot
    lint_findings: tuple[RuleFinding, ...]
    built_at: str


def scratch_server_version(config: Config, target: Target) -> str:
    """version() of the server the desired state would be built on (see scratch.choose_scratch_server),
    read without building anything; an embedded scratch server is not started to ask it."""
    if config.scratch_mode == "embedded" and target.embedded is None:
        try:
            result = subprocess.run([str(pg_dump_path().parent / "postgres"), "--version"],
                                    capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return "embedded (version unknown)"  # no key will match a real version: no reuse
        return "embedded " + result.stdout.strip()
    url = config.scratch_server_url if config.scratch_mode == "server" else target.url
    with connected(url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        cur.execute("SELECT version()")
        return cur.fetchone()[0]


def cache_key(desired: DesiredState, config: Config, server_version: str, target_privileges: str = "") -> str:
    inputs = key_inputs(config, server_version, target_privileges)
    inputs["declared"] = desired.content_hash  # the files' text and the as-of date
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def key_inputs(config: Config, server_version: str, target_privileges: str = "") -> dict:
    """Everything besides the declared files that shapes a built declared state (layers.py keys its
    template databases on these too)."""
    return {
        "format": FORMAT,
        "server": server_version,
        "schemas": list(config.scope.schemas),
        "privileges": config.scope.privileges,
        "ignore": list(config.scope.ignore),  # what the snapshot leaves out
        "roles": list(config.roles),
        "extensions": list(config.extensions),
        # inferred from the declared files (declared/inference.py): their schemas are in "schemas" above
        "declared_schemas": list(config.declared_schemas),
        "declared_extensions": list(config.declared_extensions),
        "referenced_roles": sorted({role for role, _ in config.referenced_roles}),
        "lint_ignored": sorted(f"{rule}\0{obj}" for rule, obj in config.lint_ignored),
        "tenant_columns": list(config.tenant_columns),
        "external_schemas": list(config.external_schemas),
        # the target's default privileges and grants, which the built state gets (target_environment.py)
        "target_privileges": target_privileges,
        "engine": engine_digest(),
    }


class DesiredStateCache:
    """Entries in a folder, one JSON file per key. Unreadable or foreign entries count as missing;
    a cache that cannot be written is no error (it only saves time)."""

    def __init__(self, folder: Path):
        self.folder = folder

    @classmethod
    def for_project(cls, config: Config) -> "DesiredStateCache":
        return cls(config.cache_dir)

    def _path(self, key: str) -> Path:
        return self.folder / f"desired-{key}.json"

    def get(self, key: str) -> CachedDesiredState | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            if entry.get("key") != key or entry.get("format") != FORMAT:
                return None
            objects = {(kind, name): definition for kind, name, definition in entry["objects"]}
            snapshot = CatalogSnapshot(objects, entry["facts"])
            if snapshot.fingerprint != entry["fingerprint"]:
                return None  # damaged
            findings = tuple(RuleFinding(*finding) for finding in entry["lint"])
            return CachedDesiredState(snapshot, findings, entry["built_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, snapshot: CatalogSnapshot, lint_findings) -> None:
        entry = {
            "format": FORMAT,
            "key": key,
            "built_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "fingerprint": snapshot.fingerprint,
            "objects": [[kind, name, definition] for (kind, name), definition in sorted(snapshot.objects.items())],
            "facts": snapshot.facts,
            "lint": [[f.rule, f.object, f.message] for f in lint_findings],
        }
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".desired-", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(entry, out)
            os.replace(temporary, self._path(key))  # readers see the old entry or the new, never half
            self._prune()
        except OSError:
            pass

    def _prune(self) -> None:
        entries = sorted(self.folder.glob("desired-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in entries[KEPT_ENTRIES:]:
            stale.unlink(missing_ok=True)
