"""The project and its target as every command of the public API sees them: the project folder and its
reconcile.yaml, the plans under migrations/, the target's history, and the declared state as of a
date. api.py and api_live.py build their commands from these; nothing here is a command."""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config, load_config
from .connections import connected
from .declared.files import DesiredState, load_desired_state
from .declared.inference import with_inferred
from .deploy import history
from .inspection.snapshot import CatalogSnapshot, read_snapshot
from .scratch.desired_cache import CachedDesiredState, DesiredStateCache, cache_key, scratch_server_version
from .scratch.target_environment import privileges_digest
from .servers import Target, resolve_target

if TYPE_CHECKING:  # annotations only: plans are read, and applies looked into, by the commands that need them
    from .deploy.unfinished import UnfinishedApply
    from .planning import planfile

Progress = Callable[[str], None]



@dataclasses.dataclass(frozen=True)
class Project:
    """A project folder and its reconcile.yaml, read and checked."""

    config: Config

    @property
    def path(self) -> Path:
        return self.config.project_dir

    @property
    def migrations(self) -> Path:
        return self.config.path(self.config.migrations_dir)

    def writing_to(self, migrations: Path, work: Path) -> "Project":
        """The same project with its plan files written to `migrations` and the engine's own data (the
        embedded server, the desired-state cache) kept in `work`: for a caller that must leave the
        project's folders as they are, such as the pytest plugin."""
        return Project(dataclasses.replace(self.config, migrations_dir=Path(migrations), embedded_dir=Path(work)))



def load_project(path: str | Path = ".", config_file: str | Path | None = None) -> Project:
    """Read the project's reconcile.yaml (or `config_file`), with what its declared files create or name
    (declared/inference.py); raises ConfigError when it is wrong, RefusedStatementError when a declared
    statement is refused."""
    return Project(with_inferred(load_config(Path(path), Path(config_file) if config_file else None)))



def no_progress(message: str) -> None:
    pass



def who(suffix: str = "") -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}{suffix}"



def git_commit(project: Path) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None



def plan_files(config: Config) -> list[planfile.PlanFile]:
    from .planning import planfile

    return [planfile.read(path) for path in planfile.list_plans(config.path(config.migrations_dir))]



def history_of(config: Config, target: Target) -> list[history.HistoryEntry]:
    with connected(target.url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        return history.read(cur)



def pending_of(config: Config, target: Target) -> tuple[list[history.HistoryEntry], list[planfile.PlanFile]]:
    from .deploy.apply import pending_plans

    entries = history_of(config, target)
    return entries, pending_plans(plan_files(config), history.applied_plan_names(entries))



def unfinished_of(config: Config, target: Target, plans: list[planfile.PlanFile]) -> tuple[UnfinishedApply, ...]:
    from .deploy.unfinished import unfinished_applies

    with connected(target.url, config.timeouts.connect_timeout_s) as conn, conn.cursor() as cur:
        return unfinished_applies(cur, plans)



def declared_and_target(project: Project, target: str | None, as_of: dt.date | None):
    """The project's config, its declared state as of the date (by default today, in the config's
    calendar: see Config.today), and the target."""
    config = project.config
    return config, load_desired_state(config, as_of or config.today()), resolve_target(config, target)



@dataclasses.dataclass(frozen=True)
class CacheLookup:
    cache: DesiredStateCache
    key: str
    hit: CachedDesiredState | None  # set only when the target matches the cached desired state exactly
    target_snapshot: CatalogSnapshot | None = None  # the target's, when the lookup read it (a cached key)
    declared_fingerprint: str | None = None  # the declared state's as cached for these files (a cached key)



def look_up_desired(config: Config, desired: DesiredState, target: Target, use_cache: bool) -> CacheLookup:
    """A cached desired state saves building one only when the target already matches it: any
    difference needs the desired database for migra's statements, so then it is built."""
    cache = DesiredStateCache.for_project(config)
    key = cache_key(desired, config, scratch_server_version(config, target), privileges_digest(config, target.url))
    cached = cache.get(key) if use_cache else None
    current = None
    if cached is not None:
        current = read_snapshot(target.url, config.scope, config.timeouts.connect_timeout_s)
        if not current.differences(cached.snapshot):
            return CacheLookup(cache, key, cached, current)
    desired.admit()  # the declared state will be built: nothing of it runs unless admitted
    # The target's snapshot, if read: the build need not read it again; the cached declared state's
    # fingerprint: a state of it kept on the scratch server can be taken over instead of built.
    return CacheLookup(cache, key, None, current, cached.snapshot.fingerprint if cached is not None else None)



def described(findings) -> tuple[str, ...]:
    return tuple(finding.describe() for finding in findings)
