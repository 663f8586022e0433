"""The pre-commit hooks (.pre-commit-hooks.yaml) installed by pre-commit itself, in a sample repository.

pre-commit clones the hook repository at `rev`, so it sees committed files only: the hook repository
here is a throwaway git repository made from the working tree as it is (tracked and new files), and
pre-commit builds its virtualenv from it (pip-installing reconcile, once per session: PRE_COMMIT_HOME
is a session folder).
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@example.com"}
# Nothing listens there: a hook that tried to connect would fail on it.
NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"


def git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env=os.environ | GIT_IDENTITY).stdout.strip()


def commit_all(folder):
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "snapshot")
    return git(folder, "rev-parse", "HEAD")


@pytest.fixture(scope="session")
def hook_repository(tmp_path_factory):
    """(path, commit) of a git repository holding this working tree's files."""
    folder = tmp_path_factory.mktemp("hook-repo")
    files = git(REPO, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    for name in files:
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is left out
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name)
    git(folder, "init", "-q")
    return folder, commit_all(folder)


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory):
    return tmp_path_factory.mktemp("pre-commit-home")


def pre_commit(folder, home, *args):
    env = os.environ | GIT_IDENTITY | {"PRE_COMMIT_HOME": str(home), "DATABASE_URL": NO_DATABASE}
    env.pop("RECONCILE_TEST_DATABASE_URL", None)
    return subprocess.run([str(PRE_COMMIT), "run", "--all-files", "--color", "never", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900)


def sample_repository(project, hook_repository, hooks):
    path, commit = hook_repository
    listed = "".join(f"      - id: {hook}\n" for hook in hooks)
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {path}\n    rev: {commit}\n    hooks:\n{listed}")
    git(project, "init", "-q")
    commit_all(project)
    return project


def test_reconcile_lint_hook_passes_then_names_the_refused_line(project, hook_repository, pre_commit_home):
    """The shipped project passes; a declared DROP TABLE fails the commit, the output naming file:line;
    no database is reached (DATABASE_URL points at nothing) and nothing is written in the project."""
    sample = sample_repository(project, hook_repository, ["reconcile-lint"])
    started = time.monotonic()
    passed = pre_commit(sample, pre_commit_home)
    first_run_s = time.monotonic() - started  # includes building the hook's virtualenv (pip install)
    print(f"pre-commit first run (virtualenv built, reconcile installed): {first_run_s:.0f} s")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "reconcile lint (declared files and plans, no database)" in passed.stdout
    assert "Passed" in passed.stdout

    (sample / "schema" / "999_cleanup.sql").write_text("-- an old table\nDROP TABLE users;\n")
    git(sample, "add", "-A")
    failed = pre_commit(sample, pre_commit_home)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Failed" in failed.stdout and "exit code: 1" in failed.stdout
    assert "error: schema/999_cleanup.sql:2: DROP is not allowed in a declared file" in failed.stdout
    assert git(sample, "status", "--porcelain") == "A  schema/999_cleanup.sql"  # nothing else written


def test_reconcile_check_hook_runs_before_a_push(project, cli, hook_repository, pre_commit_home):
    """reconcile-check runs at the pre-push stage only: a commit runs reconcile-lint alone (squawk on
    the plan, without a database); before a push, check passes on a project whose plan reaches the
    declared files."""
    code, _, err = cli("plan", "--name", "init")
    assert code == 0, err
    sample = sample_repository(project, hook_repository, ["reconcile-lint", "reconcile-check"])
    at_commit = pre_commit(sample, pre_commit_home, "--verbose")
    assert at_commit.returncode == 0 and "reconcile check" not in at_commit.stdout, at_commit.stdout
    assert "No findings in the declared files (admitted; no database, no security rules) and 1 plan(s)." \
        in at_commit.stdout
    before_push = pre_commit(sample, pre_commit_home, "--hook-stage", "pre-push")
    assert before_push.returncode == 0, before_push.stdout + before_push.stderr
    assert "reconcile check (migrations/ replayed on an embedded server)" in before_push.stdout
    assert "Passed" in before_push.stdout
