"""Stage 1 (declared files), before there are any: 'reconcile init' writes a new project's layout (the
declared folders, migrations/, a commented reconcile.yaml for a preset, .reconcile/ kept out of git).
Nothing that exists is overwritten: a folder that already holds a project is refused whole."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import ProjectExistsError
from ..sqltext import jinja_environment

PRESETS = ("plain", "supabase")
FOLDERS = ("schema", "partitions", "views", "policies", "migrations")
CONFIG_FILE = "reconcile.yaml"
IGNORED_LINE = ".reconcile/"
# Exclusive creation, never through a link: a file or link already there fails instead of being written.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_APPEND = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)


@dataclasses.dataclass(frozen=True)
class NewProject:
    folder: Path
    preset: str
    written: tuple[str, ...]  # paths relative to the folder, in the order written
    gitignore: str  # "created", "appended" or "unchanged"

    def to_dict(self) -> dict:
        return {"folder": str(self.folder), "preset": self.preset, "written": list(self.written),
                "gitignore": self.gitignore}


def init_project(folder: Path, preset: str = "plain") -> NewProject:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}")  # the command line offers only PRESETS
    folder = Path(folder).absolute()
    there = [name for name in (CONFIG_FILE, *FOLDERS) if os.path.lexists(folder / name)]
    if there:
        raise ProjectExistsError(f"{folder}: already holds {', '.join(there)}; init writes a new project only "
                                 f"where none of {CONFIG_FILE} and {', '.join(FOLDERS)} exists; nothing was written")
    # Decided before anything is written, so that a .gitignore init may not touch leaves nothing half-made.
    gitignore = _gitignore_change(folder / ".gitignore")
    folder.mkdir(parents=True, exist_ok=True)
    config = jinja_environment().get_template("reconcile.yaml.j2").render(preset=preset)
    _write_new(folder / CONFIG_FILE, config)
    written = [CONFIG_FILE]
    for name in FOLDERS:
        (folder / name).mkdir()
        _write_new(folder / name / ".gitkeep", "")  # git keeps no empty folder
        written.append(f"{name}/.gitkeep")
    if gitignore == "created":
        _write_new(folder / ".gitignore", IGNORED_LINE + "\n")
    elif gitignore == "appended":
        _append_line(folder / ".gitignore")
    return NewProject(folder, preset, tuple(written), gitignore)


def _write_new(path: Path, text: str) -> None:
    with os.fdopen(os.open(path, _NEW_FILE, 0o644), "w", encoding="utf-8") as handle:
        handle.write(text)


def _gitignore_change(gitignore: Path) -> str:
    """.reconcile/ (the embedded server's data and the cache) stays out of git: "created", "appended"
    (once) or "unchanged". A link, or a file that is not text, is refused: init writes through no link."""
    if gitignore.is_symlink():
        raise ProjectExistsError(f"{gitignore}: is a link; init writes through no link: nothing was written")
    if not gitignore.exists():
        return "created"
    try:
        lines = gitignore.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectExistsError(f"{gitignore}: cannot be read as text ({exc}): nothing was written") from exc
    if any(line.strip() in (IGNORED_LINE, IGNORED_LINE.rstrip("/"), "/" + IGNORED_LINE) for line in lines):
        return "unchanged"
    return "appended"


def _append_line(gitignore: Path) -> None:
    ends_with_newline = gitignore.read_bytes().endswith(b"\n") or not gitignore.stat().st_size
    with os.fdopen(os.open(gitignore, _APPEND), "a", encoding="utf-8") as handle:
        handle.write(("" if ends_with_newline else "\n") + IGNORED_LINE + "\n")
