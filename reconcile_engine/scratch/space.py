"""Stage 2: scratch space: the server scratch databases are made on (the target's, another, or an
embedded one), with the run's temporary build role on it (build_role.py) and what the target gives
every scratch database (target_environment.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import signal

from ..config import Config
from ..connections import describe
from ..errors import ScratchError, StopRequested
from ..embedded_keeper import idle_seconds
from ..servers import EmbeddedServer, Target
from .build_role import BuildRole, create_build_role, drop_build_role, may_create_roles
from .leftovers import sweep
from .target_environment import TargetEnvironment, read_target_environment


@dataclasses.dataclass
class ScratchServer:
    """Where scratch databases are made, and whether it is the target's own server."""

    admin_url: str  # any database on that server we may connect to, to CREATE/DROP DATABASE
    same_server_as_target: bool
    embedded: EmbeddedServer | None = None
    builder: BuildRole | None = None  # owns the scratch databases and runs what is in them (scratch_space)
    admin_is_superuser: bool = False
    login_checked: bool = dataclasses.field(default=False, repr=False)
    # What every scratch database gets from the target (external schemas, default privileges, grants).
    environment: TargetEnvironment = TargetEnvironment()


@contextlib.contextmanager
def scratch_space(config: Config, target: Target):
    """The scratch server for this target (choose_scratch_server), with the run's build role on it and
    what its scratch databases need from the target."""
    environment = read_target_environment(config, target.url)
    server = dataclasses.replace(choose_scratch_server(config, target), environment=environment)
    with build_role_on(server, config.timeouts.connect_timeout_s) as server:
        yield server


@contextlib.contextmanager
def build_role_on(server: ScratchServer, connect_timeout_s: int):
    """`server` with a temporary build role made on it (buildrole.py), dropped at the end; first, what
    runs that are gone left on it is dropped (leftovers.py).

    On the target's server a role that cannot create roles is refused: the declared state would run
    as the deploy role itself. Elsewhere (scratch.mode server or embedded: servers that hold nothing
    else) such a role builds as itself."""
    with TerminateAsInterrupt():
        sweep(server.admin_url, connect_timeout_s)
        superuser, creates_roles = may_create_roles(server.admin_url, connect_timeout_s)
        if not creates_roles and server.same_server_as_target:
            raise ScratchError(
                f"the role of {describe(server.admin_url)} cannot create roles, so the declared files would be "
                f"built on the target's server with the deploy role's own rights: give it CREATEROLE (the "
                f"temporary role it makes has none of its rights), or set scratch.mode to server or embedded "
                f"in reconcile.yaml to build them elsewhere"
            )
        if creates_roles:
            server = dataclasses.replace(server, admin_is_superuser=superuser,
                                         builder=create_build_role(server.admin_url, superuser, connect_timeout_s))
        try:
            yield server
        finally:
            if server.builder is not None:
                drop_build_role(server.admin_url, server.builder, connect_timeout_s)


def choose_scratch_server(config: Config, target: Target) -> ScratchServer:
    mode = config.scratch_mode
    if target.embedded is not None and mode in ("auto", "target-server", "embedded"):
        return ScratchServer(target.embedded.url("postgres"), True, target.embedded)
    if mode in ("auto", "target-server"):
        return ScratchServer(target.url, True)
    if mode == "server":
        return ScratchServer(config.scratch_server_url, False)
    from ..servers import embedded_data_dir

    scratch_dir = embedded_data_dir(config).parent / "scratch-pgdata"
    server = EmbeddedServer.start(scratch_dir, idle_s=idle_seconds(config.embedded_idle_minutes))
    return ScratchServer(server.url("postgres"), False, server)


class TerminateAsInterrupt:
    """Turn SIGTERM into KeyboardInterrupt while a scratch database exists, so it is still dropped."""

    def __enter__(self):
        self.previous = None
        try:
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not in the main thread
            pass
        return self

    @staticmethod
    def _raise(signum, frame):
        raise StopRequested

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False
