"""Beside the commands: which targets of a fleet (targets: in reconcile.yaml) a command line means:
--target NAME, --all-targets and its --shard I/N and --parallel K, checked before anything runs.
fleet.py runs a command across them."""

from __future__ import annotations

import dataclasses
import hashlib
import os

from .config import Config, TargetSpec
from .errors import ConfigError, UsageError

FLEET_COMMANDS = ("drift", "status", "maintain", "apply")
DEFAULT_PARALLEL = 4
MOST_PARALLEL = 32


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`: the targets whose name hashes to it (shard_of)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> "Shard":
        index, slash, count = text.partition("/")
        if slash and all(part.isascii() and part.isdigit() and len(part) <= 6 for part in (index, count)) \
                and 1 <= int(index) <= int(count):
            return cls(int(index), int(count))
        raise UsageError(f"--shard: expected I/N with 1 <= I <= N (shard I of N, as in a CI matrix), got {text!r}")


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) a target lands in: from its name alone, so it stays put whatever else the
    file lists, and in whatever order."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count + 1


def select_targets(config: Config, shard: Shard | None = None) -> tuple[TargetSpec, ...]:
    """The configured targets (in the file's order), or those of one shard."""
    if not config.targets:
        shown = config.config_file.name if config.config_file else "reconcile.yaml"
        raise UsageError(f"--all-targets: {shown} lists no targets: add them under targets: (see the README's Fleets)")
    return tuple(t for t in config.targets if shard is None or shard_of(t.name, shard.count) == shard.index)


def named_target(config: Config, name: str) -> TargetSpec:
    """The target --target NAME names (a usage error, listing the known names, if none does)."""
    for target in config.targets:
        if target.name == name:
            return target
    known = ", ".join(t.name for t in config.targets) or "none: add targets: to reconcile.yaml"
    raise UsageError(f"--target: no target named {name!r} (known: {known})")


def target_url(target: TargetSpec) -> str:
    """The target's URL; an unset url_env is an error only now, when the target is used."""
    url = target.url or os.environ.get(target.url_env or "")
    if not url:
        raise ConfigError(f"target {target.name}: the environment variable {target.url_env} (its URL) is not set")
    return url


def parallel_count(text: str) -> int:
    if text.isascii() and text.isdigit() and len(text) <= 3 and 1 <= int(text) <= MOST_PARALLEL:
        return int(text)
    raise UsageError(f"--parallel: expected a whole number from 1 to {MOST_PARALLEL}, got {text!r}")


def check_flags(command: str, *, all_targets: bool, shard: Shard | None, parallel: int | None,
                target: str | None, database_url: str | None, format: str) -> None:
    """Refuse, before anything runs, the fleet flags a command line cannot mean."""
    if all_targets and command not in FLEET_COMMANDS:
        raise UsageError(f"--all-targets is for {', '.join(FLEET_COMMANDS)} only, not {command}")
    if (shard or parallel) and not all_targets:
        raise UsageError(f"{'--shard' if shard else '--parallel'} needs --all-targets")
    chosen = [flag for flag, given in (("--database-url", database_url), ("--target", target),
                                       ("--all-targets", all_targets)) if given]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} each name the target: give one")
    if all_targets and format == "prometheus":
        raise UsageError("--format prometheus describes one target: use --target NAME, or --format json")
