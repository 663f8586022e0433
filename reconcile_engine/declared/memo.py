"""Stage 1, remembered: what reading the declared files found (inference.py), kept for files that have
not changed, so that a command which builds nothing (a cached drift) does not load PostgreSQL's parser.

A memo is only as trustworthy as its writer. The declared files are untrusted, and a pull request can
commit any file under the project, .reconcile/ too; a forged memo would name the schemas a plan
manages. So each memo is signed (HMAC-SHA256) with a key that lives outside the project, in the
user's cache folder, created by the first memo written on the machine. A memo without a valid
signature, or for other files, is no memo: the files are read again. A cache that cannot be written
is no error (it only saves time); memos are written only where the project has a cache already.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path

KEY_FILE = "memo.key"
FOLDER = "memo"  # under the project's cache folder (.reconcile/cache/)
KEPT = 20  # of each kind, the most recently written


def signing_key_path() -> Path:
    """$XDG_CACHE_HOME/reconcile/memo.key, else ~/.cache/reconcile/memo.key."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reconcile" / KEY_FILE


def _signing_key(create: bool) -> bytes | None:
    """This machine's key; with `create`, made first when there is none (by this process or another)."""
    path = signing_key_path()
    if create and not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(secrets.token_bytes(32))
        except OSError:  # not writable, or another process made it first: read what is there
            pass
    try:
        key = path.read_bytes()
    except OSError:
        return None
    return key if len(key) == 32 else None


def key_of(inputs: dict) -> str:
    """The memo's name: a digest of everything its value is computed from."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


class MemoStore:
    """Signed JSON values in a folder, one file per key."""

    def __init__(self, folder: Path, kind: str):
        self.folder = folder
        self.kind = kind

    def _path(self, key: str) -> Path:
        return self.folder / f"{self.kind}-{key}.json"

    @staticmethod
    def _signature(signing_key: bytes, kind: str, key: str, value) -> str:
        payload = json.dumps([kind, key, value], sort_keys=True).encode()
        return hmac.new(signing_key, payload, hashlib.sha256).hexdigest()

    def get(self, key: str):
        """The value remembered under `key`, or None (none, unreadable, or not signed by this machine)."""
        signing_key = _signing_key(create=False)
        if signing_key is None:
            return None
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            value, signature = entry["value"], entry["signature"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(signature, str) or not hmac.compare_digest(
                signature, self._signature(signing_key, self.kind, key, value)):
            return None
        return value

    def put(self, key: str, value) -> None:
        """Remember `value`, only beside a cache that a command made there already (.reconcile/cache/,
        by building the declared state): a command that builds nothing, such as `lint` in a pre-commit
        hook, writes nothing into the project."""
        if not self.folder.parent.is_dir():
            return
        signing_key = _signing_key(create=True)
        if signing_key is None:
            return
        entry = {"value": value, "signature": self._signature(signing_key, self.kind, key, value)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.folder, delete=False, suffix=".tmp",
                                             encoding="utf-8") as file:
                json.dump(entry, file)
            os.replace(file.name, self._path(key))
            older = sorted(self.folder.glob(f"{self.kind}-*.json"), key=lambda path: path.stat().st_mtime)
            for path in older[:-KEPT]:
                path.unlink(missing_ok=True)
        except OSError:
            pass
