"""`reconcile server status` and `reconcile server stop`: the project's embedded PostgreSQL servers (its
default target's, and the scratch servers of its own), which commands keep running between them
(embedded_keeper.py). Returns a typed ServerReport; render_servers.py renders it."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from .config import Config
from .embedded_keeper import last_use, read_postmaster, running, stop_when_unused, users
from .servers import embedded_data_dir

# The data folders beside the target's: scratch.mode embedded and `check` build in scratch-pgdata
# (scratch/space.py, scratch/apart.py), policy tests in test-pgdata (api.policy_tests).
SCRATCH_FOLDERS = (("scratch", "scratch-pgdata"), ("policy tests", "test-pgdata"))
STOP_WAIT_S = 30.0  # how long `server stop` waits for the commands using a server to end


@dataclasses.dataclass(frozen=True)
class EmbeddedServerState:
    """One embedded server of the project, as `server status` (or `server stop`, after it) sees it."""

    role: str  # "target", "scratch" or "policy tests"
    data_dir: Path
    running: bool
    pid: int | None = None
    socket_dir: Path | None = None
    port: int | None = None
    idle_seconds: float | None = None  # the idle time the last command set (0: stopped after each)
    unused_for_seconds: float | None = None  # since the last command began or ended
    in_use_by: tuple[str, ...] = ()  # "pid N: reconcile drift ..."
    stopped: bool = False  # `server stop` stopped it

    def to_dict(self) -> dict:
        return {"role": self.role, "data_dir": str(self.data_dir), "running": self.running, "pid": self.pid,
                "socket_dir": str(self.socket_dir) if self.socket_dir else None, "port": self.port,
                "idle_seconds": self.idle_seconds, "unused_for_seconds": self.unused_for_seconds,
                "in_use_by": list(self.in_use_by), "stopped": self.stopped}


@dataclasses.dataclass(frozen=True)
class ServerReport:
    action: str  # "status" or "stop"
    servers: tuple[EmbeddedServerState, ...]  # those whose data folder exists, the target's first
    target_data_dir: Path  # where the default target's data is (or would be)

    def to_dict(self) -> dict:
        return {"action": self.action, "target_data_dir": str(self.target_data_dir),
                "servers": [s.to_dict() for s in self.servers]}


def data_folders(config: Config) -> list[tuple[str, Path]]:
    target = embedded_data_dir(config)
    return [("target", target), *((role, target.parent / folder) for role, folder in SCRATCH_FOLDERS)]


def state_of(role: str, data_dir: Path) -> EmbeddedServerState:
    postmaster = running(data_dir)
    used = last_use(data_dir)
    idle, unused_for = (used[0], max(0.0, time.time() - used[1])) if used else (None, None)
    if postmaster is None:
        return EmbeddedServerState(role, data_dir, False, idle_seconds=idle, unused_for_seconds=unused_for)
    return EmbeddedServerState(role, data_dir, True, postmaster.pid, postmaster.socket_dir, postmaster.port, idle,
                               unused_for, users(data_dir))


def server_status(config: Config) -> ServerReport:
    return ServerReport("status", tuple(state_of(role, path) for role, path in data_folders(config)
                                        if path.is_dir()), embedded_data_dir(config))


def server_stop(config: Config, wait_s: float = STOP_WAIT_S) -> ServerReport:
    """Stop every embedded server of the project once the commands using it end (waiting up to wait_s
    for each; ServerInUseError names them after that, and stops nothing more)."""
    states = []
    for role, path in data_folders(config):
        if not path.is_dir():
            continue
        if read_postmaster(path) is None:
            states.append(state_of(role, path))
            continue
        stopped = stop_when_unused(path, wait_s)
        states.append(dataclasses.replace(state_of(role, path), stopped=stopped))
    return ServerReport("stop", tuple(states), embedded_data_dir(config))
