"""A connection password never appears in any output: stdout, stderr (with --verbose too), plan files."""

import os
import threading
from urllib.parse import urlsplit

import psycopg2
import pytest

from reconcile_engine.cli import run

FAKE_SECRET = "Sup3r-Secret-Pw"


AGGREGATE = "\nCREATE AGGREGATE score_sum(int4) (sfunc = int4pl, stype = int4);\n"


def _with_password(url, password):
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"
    return parts._replace(netloc=netloc).geturl()


@pytest.fixture
def secret_url(target_url):
    """The target's URL with a password in it: the real one where the server checks passwords,
    else an invented one (a trust-auth server ignores it)."""
    password = urlsplit(target_url).password
    if password:
        return target_url, password
    return _with_password(target_url, FAKE_SECRET), FAKE_SECRET


def _everything(capsys, project, args, url):
    code = run([*args, "--project", str(project), "--database-url", url, "--verbose"])
    captured = capsys.readouterr()
    files = "".join(p.read_text() for p in (project / "migrations").rglob("*.sql"))
    return code, captured.out + captured.err + files


def test_no_password_in_any_output_on_success(capsys, project, secret_url):
    url, secret = secret_url
    for args in (["plan", "--as-of", "2026-06-01"], ["apply"], ["drift", "--as-of", "2026-06-01"],
                 ["drift", "--format", "json", "--as-of", "2026-06-01"], ["status"], ["status", "--format", "json"],
                 ["lint"], ["maintain", "--as-of", "2026-06-01"]):
        code, output = _everything(capsys, project, args, url)
        assert code == 0, (args, output[-500:])
        assert secret not in output, args


def test_no_password_on_error_paths(capsys, project, secret_url, target_url):
    url, secret = secret_url
    unreachable = _with_password("postgresql://app@127.0.0.1:1/app", secret)
    code, output = _everything(capsys, project, ["drift"], unreachable)
    assert code == 1 and "cannot connect" in output and secret not in output

    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("text NOT NULL UNIQUE", "txet NOT NULL UNIQUE"))
    code, output = _everything(capsys, project, ["plan"], url)
    assert code == 1 and "020_users.sql" in output and secret not in output

    if urlsplit(target_url).password:  # only a server that checks passwords can refuse one
        wrong = _with_password(target_url, secret + "-wrong")
        code, output = _everything(capsys, project, ["drift"], wrong)
        assert code == 1 and "password authentication failed" in output
        assert secret not in output


def _command_lines():
    """Every process's arguments, as `ps` shows them to any user of the machine."""
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    lines.append(handle.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass  # gone meanwhile
    return lines


def test_no_password_in_the_process_list_while_a_plan_copies_the_target(capsys, project, secret_url, monkeypatch):
    url, secret = secret_url
    monkeypatch.setenv("DATABASE_URL", url)  # the URL is given only there, as in a CI job
    base = ["--project", str(project), "--as-of", "2026-06-01"]
    assert run(["plan", *base]) == 0 and run(["apply", "--project", str(project)]) == 0
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text() + "\nCREATE INDEX users_created_at_idx ON users (created_at);\n")
    # An aggregate, on the target and declared: migra cannot write one, so the rehearsal's copy of the
    # target is made with pg_dump (rehearsal/target_copy.py), whose command line is sampled below.
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(AGGREGATE)
    conn.close()
    users.write_text(users.read_text() + AGGREGATE)
    seen = {"pg_dump": 0, "leaks": []}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for line in _command_lines():
                if "pg_dump" in line:
                    seen["pg_dump"] += 1
                if secret in line:
                    seen["leaks"].append(line)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        code = run(["plan", *base])
    finally:
        stop.set()
        sampler.join()
    captured = capsys.readouterr()

    assert code == 0, captured.err
    assert "copying it with pg_dump instead" in captured.err
    assert seen["pg_dump"], "the sampler never saw pg_dump copying the target"
    assert seen["leaks"] == []


@pytest.mark.parametrize("url, without, password", [
    ("postgresql://app:p%40ss%25@db:5432/app?sslmode=require", "postgresql://app@db:5432/app?sslmode=require", "p@ss%"),
    ("postgresql://app@db/app?password=a%2541b&sslmode=require", "postgresql://app@db/app?sslmode=require", "a%41b"),
    ("postgresql://app@db/app", "postgresql://app@db/app", None),
])
def test_pg_dump_gets_the_password_decoded_once_and_only_in_its_environment(url, without, password):
    from reconcile_engine.connections import libpq_environment

    assert libpq_environment(url) == (without, {"PGPASSWORD": password} if password is not None else {})
