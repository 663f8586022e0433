"""Stage 2: a scratch server apart from the target, for what must never touch it: `check` and baselines
replay the plans there, policy tests create their roles there."""

from __future__ import annotations

import contextlib

from ..config import Config
from ..embedded_keeper import idle_seconds
from ..servers import EmbeddedServer, embedded_data_dir
from .space import ScratchServer, build_role_on
from .target_environment import TargetEnvironment


@contextlib.contextmanager
def server_apart(config: Config, environment: TargetEnvironment, folder: str):
    """A scratch server that is never the target's, for what must not touch it (a replay of the plans,
    policy tests that create roles): scratch.server_url (scratch.mode: server), else an embedded one in
    `folder` beside the project's embedded data; with the run's build role and `environment`."""
    embedded = None
    if config.scratch_mode == "server":
        server = ScratchServer(config.scratch_server_url, False, environment=environment)
    else:
        embedded = EmbeddedServer.start(embedded_data_dir(config).parent / folder,
                                        idle_s=idle_seconds(config.embedded_idle_minutes))
        server = ScratchServer(embedded.url("postgres"), False, embedded, environment=environment)
    try:
        with build_role_on(server, config.timeouts.connect_timeout_s) as server:
            yield server
    finally:
        if embedded is not None:
            embedded.release()  # kept running for the next command, as the embedded.idle_minutes setting says
