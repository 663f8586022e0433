"""'reconcile init': a new project's layout, for a preset; nothing that exists is overwritten."""

import os

import pytest

import reconcile_engine as reconcile
from reconcile_engine.cli import run
from reconcile_engine.config import load_config

FOLDERS = ("schema", "partitions", "views", "policies", "migrations")


def _init(capsys, folder, *args):
    code = run(["init", "--project", str(folder), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tree(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_init_writes_a_project_that_loads_and_needs_only_declared_files(capsys, tmp_path, target_url):
    folder = tmp_path / "app"
    code, out, err = _init(capsys, folder)

    assert code == 0, err
    assert out.startswith(f"Created a reconcile project (plain) in {folder}:")
    assert all((folder / name / ".gitkeep").is_file() for name in FOLDERS)
    assert (folder / ".gitignore").read_text() == ".reconcile/\n"
    config = load_config(folder)
    assert config.managed_schemas == ("public",) and config.tenant_columns == ("organization_id",)
    (folder / "schema" / "notes.sql").write_text("CREATE TABLE notes (id int PRIMARY KEY, body text);\n")
    assert run(["plan", "--project", str(folder), "--database-url", target_url]) == 0
    assert len(list((folder / "migrations").glob("*.sql"))) == 1


def test_the_supabase_preset_leaves_supabase_alone_and_knows_prisma_s_tenant_column(tmp_path):
    made = reconcile.init(tmp_path / "app", preset="supabase")

    config = load_config(made.folder)
    assert config.external_schemas == ("auth", "storage", "extensions")
    assert {"realtime", "graphql", "vault"} <= set(config.excluded_schemas)
    assert config.ignore == ("public._prisma_migrations",)
    assert config.roles == ("anon", "authenticated", "service_role")
    assert "organizationId" in config.tenant_columns
    assert made.to_dict()["written"][0] == "reconcile.yaml" and made.gitignore == "created"


def test_an_existing_project_is_refused_whole_and_nothing_is_written(capsys, tmp_path):
    folder = tmp_path / "app"
    (folder / "schema").mkdir(parents=True)
    (folder / "schema" / "users.sql").write_text("CREATE TABLE users (id int PRIMARY KEY);\n")
    before = _tree(folder)

    code, out, err = _init(capsys, folder, "--preset", "supabase")

    assert code == 1 and out == ""
    assert err.startswith(f"error: {folder}: already holds schema;") and "nothing was written" in err
    assert _tree(folder) == before


def test_a_link_where_the_config_would_go_is_not_followed(capsys, tmp_path):
    """A hostile checkout: reconcile.yaml is a link to a file outside the project. init refuses, and
    the file behind the link is untouched."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    folder = tmp_path / "app"
    folder.mkdir()
    os.symlink(outside, folder / "reconcile.yaml")
    os.symlink(tmp_path / "nowhere", folder / "views")  # a dangling link counts as there too

    code, _, err = _init(capsys, folder)

    assert code == 1 and "already holds reconcile.yaml, views" in err
    assert outside.read_text() == "precious\n" and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("existing, expected, state", [
    ("node_modules/\n", "node_modules/\n.reconcile/\n", "appended"),
    ("node_modules/", "node_modules/\n.reconcile/\n", "appended"),
    ("/.reconcile/\n", "/.reconcile/\n", "unchanged"),
])
def test_an_existing_gitignore_gets_the_line_once(tmp_path, existing, expected, state):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / ".gitignore").write_text(existing)

    made = reconcile.init(folder)

    assert made.gitignore == state and (folder / ".gitignore").read_text() == expected


def test_an_unknown_preset_is_a_usage_error(capsys, tmp_path):
    code, out, err = _init(capsys, tmp_path / "app", "--preset", "firebase")
    assert code == 1 and out == "" and "invalid choice: 'firebase'" in err
    assert not (tmp_path / "app").exists()


def test_a_gitignore_init_may_not_write_is_refused_before_anything_is_written(capsys, tmp_path):
    """A .gitignore that is a link (to a file outside the project), or not text: refused, nothing written."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(outside, linked / ".gitignore")
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / ".gitignore").write_bytes(b"\xff\xfe\x00")

    for folder in (linked, binary):
        before = _tree(folder)
        code, out, err = _init(capsys, folder)
        assert code == 1 and out == "" and "nothing was written" in err and "unexpected" not in err
        assert _tree(folder) == before
    assert outside.read_text() == "precious\n"
