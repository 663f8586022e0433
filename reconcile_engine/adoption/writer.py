"""Stage A6 (pull): the declared files on disk, refusing to overwrite what someone wrote.

Pull writes into schema/, views/, policies/ (never policies/tests/) and partitions/. Before writing
anything it looks at what is there: a file it would write that holds something else, or a declared
file it would not write (a .sql, .sql.j2, .yaml or .yml the loader would read), is a conflict, and
with conflicts nothing is changed unless forced (then the first are overwritten and the second
removed). A file whose content is already right is not touched, so a second pull changes nothing.
No link is ever written through or removed: a linked folder or file is refused, forced or not.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path

from ..errors import PullConflictError

FOLDERS = ("schema", "partitions", "views", "policies")
_DECLARED_SUFFIXES = (".sql", ".sql.j2")
_SPEC_SUFFIXES = (".yaml", ".yml")
# A new file, never through a link: a file or link already at the name fails instead of being written.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_SHOWN = 5  # conflicting files named in the error, before "and N more"


@dataclasses.dataclass(frozen=True)
class Written:
    written: tuple[str, ...]  # paths relative to the project, created or overwritten
    unchanged: tuple[str, ...]  # already holding exactly what pull would write
    removed: tuple[str, ...]  # stale declared files removed (force only)


def _declared(folder: str, name: str) -> bool:
    """Whether the loader (declared/files.py) reads a file of this name in this folder."""
    return name.endswith(_DECLARED_SUFFIXES) or (folder == "partitions" and name.endswith(_SPEC_SUFFIXES))


def _existing(project: Path) -> dict[str, Path]:
    """The declared files there now (links included, to be refused), by path relative to the project."""
    found = {}
    for folder in FOLDERS:
        directory = project / folder
        if directory.is_symlink():
            raise PullConflictError(f"{folder}/ is a link; pull writes through no link: replace it with a folder "
                                    f"(nothing was written)")
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if (path.is_file() or path.is_symlink()) and _declared(folder, path.name):
                found[f"{folder}/{path.name}"] = path
    return found


def _check_path(relative: str) -> None:
    """Defence in depth: every path the layout makes is FOLDER/one-safe-component."""
    folder, _, name = relative.partition("/")
    if folder not in FOLDERS or not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise AssertionError(f"pull made an unsafe path: {relative!r}")


def write_files(project: Path, files: dict[str, str], force: bool) -> Written:
    """Write `files` ({path relative to the project: text}) into the project's declared folders."""
    for relative in files:
        _check_path(relative)
    existing = _existing(project)
    links = sorted(relative for relative, path in existing.items() if path.is_symlink())
    if links:
        raise PullConflictError(f"{_named(links)}: a link; pull writes through no link and removes none: "
                                f"replace it with a file (nothing was written)")
    unchanged = {relative for relative, text in files.items()
                 if relative in existing and _content(existing[relative]) == text.encode()}
    different = sorted(relative for relative in files if relative in existing and relative not in unchanged)
    stale = sorted(set(existing) - set(files))
    if (different or stale) and not force:
        parts = ([f"{_named(different)} would be overwritten"] if different else []) + \
                ([f"{_named(stale)} would not be written by pull"] if stale else [])
        raise PullConflictError(f"the declared folders already hold files: {'; '.join(parts)}; pull changed "
                                f"nothing (--force overwrites them and removes the others)")
    written = []
    for relative, text in sorted(files.items()):
        if relative in unchanged:
            continue
        try:
            _replace(project / relative, text)
        except OSError as exc:
            raise PullConflictError(f"{relative}: cannot be written: {exc.strerror or exc}"
                                    + (f" (written before it: {_named(written)})" if written else "")) from exc
        written.append(relative)
    for relative in stale:
        (project / relative).unlink()
    return Written(tuple(written), tuple(sorted(unchanged)), tuple(stale))


def _content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _named(paths: list[str]) -> str:
    more = len(paths) - _SHOWN
    return ", ".join(paths[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _replace(path: Path, text: str) -> None:
    """Write `path` whole: a new file beside it, renamed over it (a rename replaces a name, it does
    not follow a link), so that a reader never sees half a file."""
    folder = path.parent
    if folder.is_symlink():
        raise PullConflictError(f"{folder.name}/ is a link; pull writes through no link (nothing more was written)")
    folder.mkdir(exist_ok=True)
    temporary = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        with os.fdopen(os.open(temporary, _NEW_FILE, 0o644), "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            temporary.unlink()
