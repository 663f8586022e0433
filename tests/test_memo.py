"""What reading the declared files found, remembered for unchanged files (declared/memo.py): signed
with a key outside the project, so a memo a pull request commits is never followed."""

import hashlib
import hmac
import json
import textwrap

import pytest

import reconcile_engine as reconcile
from reconcile_engine.declared import memo
from reconcile_engine.errors import RefusedStatementError
from reconcile_engine.version import engine_digest

TABLES = "CREATE TABLE notes (id bigint PRIMARY KEY, body text);\n"
REPORTING = "CREATE SCHEMA reporting;\nCREATE TABLE reporting.totals (id bigint PRIMARY KEY);\n"


@pytest.fixture(autouse=True)
def signing_home(tmp_path, monkeypatch):
    """A cache folder of its own: the signing key these tests make is theirs."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache" / "reconcile" / memo.KEY_FILE


def _project(tmp_path, schema_sql, cached=True):
    """A project; cached: with the cache folder a command that built the declared state leaves."""
    folder = tmp_path / "app"
    (folder / "schema").mkdir(parents=True, exist_ok=True)
    (folder / "schema" / "010_app.sql").write_text(textwrap.dedent(schema_sql))
    (folder / "reconcile.yaml").write_text("")
    if cached:
        (folder / ".reconcile" / "cache").mkdir(parents=True)
    return folder


def _memos(folder):
    return sorted((folder / ".reconcile" / "cache" / memo.FOLDER).glob("inferred-*.json"))


def _sign(key: bytes, name: str, value) -> str:
    digest = name.removeprefix("inferred-").removesuffix(".json")
    payload = json.dumps(["inferred", digest, value], sort_keys=True).encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def test_a_memo_is_written_once_and_answers_for_the_same_files(tmp_path, signing_home):
    folder = _project(tmp_path, REPORTING)

    first = reconcile.load_project(folder).config
    [written] = _memos(folder)
    again = reconcile.load_project(folder).config

    assert "reporting" in first.managed_schemas and first.declared_schemas == ("reporting",)
    assert again.managed_schemas == first.managed_schemas and again.declared_schemas == first.declared_schemas
    assert _memos(folder) == [written]
    assert signing_home.is_file() and signing_home.stat().st_mode & 0o077 == 0  # the key is the user's alone
    assert not str(signing_home).startswith(str(folder))


def test_a_changed_file_is_read_again(tmp_path):
    folder = _project(tmp_path, TABLES)
    assert reconcile.load_project(folder).config.declared_schemas == ()

    (folder / "schema" / "010_app.sql").write_text(TABLES + REPORTING)

    assert reconcile.load_project(folder).config.declared_schemas == ("reporting",)
    assert len(_memos(folder)) == 2


def test_the_signature_is_what_makes_a_memo(tmp_path, signing_home):
    """A memo re-signed with this machine's key is followed (so the memo is what answers); the same memo
    edited without the key is not."""
    folder = _project(tmp_path, TABLES)
    reconcile.load_project(folder)
    [path] = _memos(folder)
    entry = json.loads(path.read_text())
    forged = {**entry["value"], "schemas": [["reporting", "schema/010_app.sql:1"]]}

    path.write_text(json.dumps({"value": forged, "signature": entry["signature"]}))
    assert reconcile.load_project(folder).config.declared_schemas == ()

    path.write_text(json.dumps({"value": forged, "signature": _sign(signing_home.read_bytes(), path.name, forged)}))
    assert reconcile.load_project(folder).config.declared_schemas == ("reporting",)


@pytest.mark.parametrize("signature", ["", "0" * 64, None, 7])
def test_a_committed_memo_does_not_hide_a_refused_file(tmp_path, signing_home, signature):
    """Hostile: a pull request declares CREATE SCHEMA pg_catalog and commits a memo for those very files
    that says they create nothing, signed with a key of its own choosing (or none): refused all the same,
    and the forged memo stays unread."""
    folder = _project(tmp_path, "CREATE SCHEMA pg_catalog;\n")
    sources = [["schema/010_app.sql", "CREATE SCHEMA pg_catalog;\n"]]
    name = "inferred-" + memo.key_of({"code": engine_digest(), "excluded_schemas": [], "external_schemas": [],
                                      "sources": sources}) + ".json"
    value = {"schemas": [], "extensions": [], "roles": []}
    committed = folder / ".reconcile" / "cache" / memo.FOLDER / name
    committed.parent.mkdir(parents=True, exist_ok=True)
    committed.write_text(json.dumps({"value": value, "signature": signature if signature != "" else
                                     _sign(b"k" * 32, name, value)}))

    with pytest.raises(RefusedStatementError, match="schema/010_app.sql:1: CREATE SCHEMA pg_catalog is not allowed"):
        reconcile.load_project(folder)
    assert json.loads(committed.read_text())["value"] == value


def test_a_project_without_a_cache_gets_no_memo(tmp_path):
    """A command that builds nothing (lint, in a pre-commit hook) writes nothing into the project."""
    folder = _project(tmp_path, REPORTING, cached=False)

    assert reconcile.load_project(folder).config.declared_schemas == ("reporting",)
    assert not (folder / ".reconcile").exists()


def test_without_a_writable_key_nothing_is_remembered(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # its reconcile/ folder cannot be made
    folder = _project(tmp_path, REPORTING)

    assert reconcile.load_project(folder).config.declared_schemas == ("reporting",)
    assert _memos(folder) == []
