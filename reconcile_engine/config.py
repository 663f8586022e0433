"""Stage 0: read reconcile.yaml into a typed Config (every later stage takes this, never the file)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .errors import ConfigError

CONFIG_FILE_NAME = "reconcile.yaml"
SCRATCH_MODES = ("auto", "target-server", "server", "embedded")
# The tool keeps its history here; it is never diffed and never touched by a plan.
TOOL_SCHEMA = "reconcile"
# Where a table converted to (or from) partitions is built beside the live one, gone once swapped in.
CONVERSION_SCHEMA = "reconcile_conversion"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h)?\s*$")
_DURATION_FACTORS_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, None: 1000}


@dataclasses.dataclass(frozen=True)
class Timeouts:
    lock_timeout_ms: int = 5_000
    statement_timeout_ms: int = 300_000
    apply_lock_wait_ms: int = 60_000
    connect_timeout_s: int = 10
    # A statement that waits longer than lock_timeout for a table lock gives up; the plan is then
    # rolled back and tried again, this many times, waiting lock_retry_delay (doubling) in between.
    lock_retries: int = 5
    lock_retry_delay_ms: int = 1_000


@dataclasses.dataclass(frozen=True)
class TargetSpec:
    """One database of a fleet (targets: in reconcile.yaml), run by --target NAME or --all-targets."""

    name: str
    url: str | None = None  # exactly one of url and url_env
    url_env: str | None = None  # the environment variable holding the URL, read when the target is used
    group: str = "default"


@dataclasses.dataclass(frozen=True)
class Config:
    project_dir: Path
    config_file: Path | None
    database_url: str | None = None
    managed_schemas: tuple[str, ...] = ("public",)
    excluded_schemas: tuple[str, ...] = ()
    # Schemas the declared state may reference (auth.uid(), extensions.gen_random_uuid()) but never owns:
    # reproduced in every scratch database, never compared or changed.
    external_schemas: tuple[str, ...] = ()
    # Globs on qualified names ("public._prisma_migrations", "public.*_backup"): objects in the managed
    # schemas that are never compared, planned or dropped, nor reported by drift.
    ignore: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    # Inferred from the declared files (declared/inference.py), never read from reconcile.yaml: the
    # schemas they create (also in managed_schemas), the extensions they create (so never made
    # beforehand in a scratch database) and the roles they name, each with the file:line naming it.
    declared_schemas: tuple[str, ...] = ()
    declared_extensions: tuple[str, ...] = ()
    referenced_roles: tuple[tuple[str, str], ...] = ()
    scratch_mode: str = "auto"
    scratch_server_url: str | None = None
    embedded_dir: Path = Path(".reconcile")
    # How long the embedded server stays up after the last command (0: stopped at the end of each).
    embedded_idle_minutes: float = 15
    migrations_dir: Path = Path("migrations")
    timeouts: Timeouts = Timeouts()
    vars: dict = dataclasses.field(default_factory=dict)
    privileges: bool = False  # manage (diff and apply) grants on the managed schemas' objects
    lint_ignored: dict = dataclasses.field(default_factory=dict)  # (rule, object) -> reason
    # Columns that say which tenant a row belongs to: a table with one needs row-level security.
    tenant_columns: tuple[str, ...] = ("organization_id",)
    online: bool = True  # on a target that has tables, slow blocking statements become online steps
    # Rows per batch of a data step and of the copy of a table converted to partitions, each batch its
    # own short transaction (written into the plan, where the reviewer sees it).
    batch_rows: int = 5_000
    # The IANA time zone whose calendar gives the default as-of date (None: UTC), see today().
    timezone: str | None = None
    targets: tuple[TargetSpec, ...] = ()  # the fleet (fleet.py), in the file's order
    waves: tuple[str, ...] = ()  # the groups, in the order apply --all-targets runs them

    @property
    def scope(self):
        from .inspection.snapshot import Scope

        return Scope(self.managed_schemas, self.privileges, self.ignore)

    def path(self, relative: Path | str) -> Path:
        return (self.project_dir / relative).resolve()

    @property
    def cache_dir(self) -> Path:
        """reconcile's caches (the desired state, template layers, the declared files' memos): under
        embedded_dir (.reconcile/), which projects keep out of git."""
        return self.path(self.embedded_dir) / "cache"

    def today(self) -> dt.date:
        """The default as-of date, which places partition windows: the current date in `timezone:`,
        else in UTC; never the machine's local date, so that a CI runner in UTC-12 and a cron host in
        UTC+14 place the same window at the same instant."""
        return current_date(self.timezone)


def current_date(timezone: str | None = None) -> dt.date:
    """The current date in the IANA time zone `timezone` (None: UTC)."""
    return dt.datetime.now(ZoneInfo(timezone) if timezone else dt.timezone.utc).date()


TIMEZONE_EXAMPLE = "UTC, Europe/Paris or America/New_York"


def _timezone(value: Any, where: str) -> str | None:
    """An IANA time zone name that this machine's zone database knows (None: unset, UTC)."""
    if value is None:
        return None
    if isinstance(value, str) and value:
        try:
            ZoneInfo(value)
            return value
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass  # a name the zone database lacks, or a path that is no zone's name: said below
    raise ConfigError(f"{where}: unknown time zone {value!r}; expected an IANA time zone name such as "
                      f"{TIMEZONE_EXAMPLE} (the calendar of the default as-of date; UTC when unset)")


def _duration_ms(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration such as 5s, 500ms or 2min, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value * 1000)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(float(match.group(1)) * _DURATION_FACTORS_MS[match.group(2)])
    raise ConfigError(f"{where}: expected a duration such as 5s, 500ms or 2min, got {value!r}")


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected a whole number 0 or more, got {value!r}")
    return value


def _string(value: Any, where: str, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _inside(project_dir: Path, value: Any, where: str) -> Path:
    """A folder reconcile writes to: inside the project, whatever reconcile.yaml (a file a pull request
    can change) says."""
    folder = Path(_string(value, where))
    if not (project_dir / folder).resolve().is_relative_to(project_dir):
        raise ConfigError(f"{where}: must be a folder inside the project, got {value!r}")
    return folder


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of names, got {value!r}")
    return tuple(value)


def _mapping(value: Any, where: str, allowed: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(allowed)})")
    return value


_TOP_KEYS = (
    "database_url", "managed_schemas", "excluded_schemas", "roles", "extensions",
    "scratch", "embedded_dir", "migrations_dir", "timeouts", "vars", "privileges", "lint", "online",
    "external_schemas", "ignore", "batch_rows", "timezone", "targets", "waves", "embedded",
)
# A target's name is printed, used in file-free places (a CI matrix, a log line): plain characters only.
_TARGET_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _targets(value: Any, name: str) -> tuple[TargetSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{name}: targets: expected a list of {{name, url or url_env, group}}")
    targets: dict[str, TargetSpec] = {}
    for number, entry in enumerate(value, 1):
        where = f"{name}: targets[{number}]"
        entry = _mapping(entry, where, ("name", "url", "url_env", "group"))
        spec = TargetSpec(_string(entry.get("name"), f"{where}.name"),
                          _string(entry.get("url"), f"{where}.url", allow_none=True),
                          _string(entry.get("url_env"), f"{where}.url_env", allow_none=True),
                          _string(entry.get("group", "default"), f"{where}.group"))
        for field, text in (("name", spec.name), ("group", spec.group)):
            if not _TARGET_NAME.fullmatch(text) or text in (".", ".."):
                raise ConfigError(f"{where}.{field}: expected letters, digits, '_', '.' or '-', got {text!r}")
        if (spec.url is None) == (spec.url_env is None):
            raise ConfigError(f"{where}: give exactly one of url and url_env (the environment variable holding it)")
        if spec.url_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", spec.url_env):
            raise ConfigError(f"{where}.url_env: expected an environment variable's name, got {spec.url_env!r}")
        if spec.name in targets:
            raise ConfigError(f"{where}.name: {spec.name!r} names two targets")
        targets[spec.name] = spec
    return tuple(targets.values())


def _waves(value: Any, name: str, targets: tuple[TargetSpec, ...]) -> tuple[str, ...]:
    """The groups in apply's order: as given (each group once), else in order of first appearance with
    "canary" first."""
    groups = list(dict.fromkeys(t.group for t in targets))
    if value is None:
        return tuple(sorted(groups, key=lambda group: group != "canary"))
    waves = _string_list(value, f"{name}: waves")
    unknown = [g for g in waves if g not in groups]
    missing = [g for g in groups if g not in waves]
    if unknown or missing or len(set(waves)) != len(waves):
        raise ConfigError(f"{name}: waves: must name each group of targets: once, in the order apply runs "
                          f"them (groups: {', '.join(groups) or 'none'}), got {list(waves)!r}")
    return waves


def _lint_ignored(value: Any, name: str) -> dict:
    from .checks.security_rules import RULE_NAMES

    section = _mapping(value, f"{name}: lint", ("ignore", "tenant_columns"))
    entries = section.get("ignore") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{name}: lint.ignore: expected a list of {{rule, object, reason}}")
    ignored = {}
    for number, entry in enumerate(entries, 1):
        where = f"{name}: lint.ignore[{number}]"
        entry = _mapping(entry, where, ("rule", "object", "reason"))
        rule = _string(entry.get("rule"), f"{where}.rule")
        if rule not in RULE_NAMES:
            raise ConfigError(f"{where}.rule: unknown rule {rule!r} (known: {', '.join(RULE_NAMES)})")
        reason = _string(entry.get("reason"), f"{where}.reason (say why the rule does not apply)")
        ignored[(rule, _string(entry.get("object"), f"{where}.object"))] = reason
    return ignored


def _tenant_columns(value: Any, name: str) -> tuple[str, ...]:
    """lint.tenant_columns: the column names (as the database has them: "organizationId" for Prisma)
    that mark a tenant's rows; default organization_id."""
    section = value if isinstance(value, dict) else {}
    if section.get("tenant_columns") is None:
        return ("organization_id",)
    columns = _string_list(section["tenant_columns"], f"{name}: lint.tenant_columns")
    if not columns:
        raise ConfigError(f"{name}: lint.tenant_columns: name at least one column (default: [organization_id])")
    return columns


def _ignore_globs(value: Any, name: str, managed: tuple[str, ...]) -> tuple[str, ...]:
    """ignore: globs matched against "schema.name" (fnmatch, case-sensitive, as the database spells it).
    A glob whose schema part matches no managed schema would ignore nothing: a typo, refused."""
    globs = _string_list(value, f"{name}: ignore")
    for number, glob in enumerate(globs, 1):
        schema, dot, table = glob.partition(".")
        if not dot or not schema or not table:
            raise ConfigError(f"{name}: ignore[{number}]: expected a qualified name such as "
                              f"public._prisma_migrations or public.*_backup, got {glob!r}")
        if not any(fnmatch.fnmatchcase(managed_schema, schema) for managed_schema in managed):
            raise ConfigError(f"{name}: ignore[{number}]: {glob!r} is in no managed schema "
                              f"({', '.join(managed)}), so it would ignore nothing")
    return globs


def load_config(project_dir: Path, config_file: Path | None = None) -> Config:
    """Read the project's config; a project without reconcile.yaml gets the defaults."""
    project_dir = project_dir.resolve()
    explicit = config_file is not None
    config_file = (config_file or project_dir / CONFIG_FILE_NAME).resolve()
    if not project_dir.is_dir():
        raise ConfigError(f"project folder {project_dir} does not exist")
    if not config_file.exists():
        if explicit:
            raise ConfigError(f"{config_file}: config file not found")
        return Config(project_dir=project_dir, config_file=None)
    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config_file}:{mark.line + 1}" if mark else str(config_file)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from exc
    except OSError as exc:
        raise ConfigError(f"{config_file}: cannot read: {exc.strerror}") from exc
    name = config_file.name
    top = _mapping(raw, name, _TOP_KEYS)

    scratch = _mapping(top.get("scratch"), f"{name}: scratch", ("mode", "server_url"))
    mode = scratch.get("mode", "auto")
    if mode not in SCRATCH_MODES:
        raise ConfigError(f"{name}: scratch.mode: expected one of {', '.join(SCRATCH_MODES)}, got {mode!r}")
    if mode == "server" and not scratch.get("server_url"):
        raise ConfigError(f"{name}: scratch.server_url: required when scratch.mode is 'server'")

    timeouts_raw = _mapping(
        top.get("timeouts"), f"{name}: timeouts",
        ("lock_timeout", "statement_timeout", "apply_lock_wait", "connect_timeout", "lock_retries",
         "lock_retry_delay"),
    )
    defaults = Timeouts()
    timeouts = Timeouts(
        lock_timeout_ms=_duration_ms(timeouts_raw["lock_timeout"], f"{name}: timeouts.lock_timeout")
        if "lock_timeout" in timeouts_raw else defaults.lock_timeout_ms,
        statement_timeout_ms=_duration_ms(timeouts_raw["statement_timeout"], f"{name}: timeouts.statement_timeout")
        if "statement_timeout" in timeouts_raw else defaults.statement_timeout_ms,
        apply_lock_wait_ms=_duration_ms(timeouts_raw["apply_lock_wait"], f"{name}: timeouts.apply_lock_wait")
        if "apply_lock_wait" in timeouts_raw else defaults.apply_lock_wait_ms,
        connect_timeout_s=max(1, _duration_ms(timeouts_raw["connect_timeout"], f"{name}: timeouts.connect_timeout") // 1000)
        if "connect_timeout" in timeouts_raw else defaults.connect_timeout_s,
        lock_retries=_whole(timeouts_raw.get("lock_retries", defaults.lock_retries), f"{name}: timeouts.lock_retries"),
        lock_retry_delay_ms=_duration_ms(timeouts_raw["lock_retry_delay"], f"{name}: timeouts.lock_retry_delay")
        if "lock_retry_delay" in timeouts_raw else defaults.lock_retry_delay_ms,
    )

    managed = _string_list(top.get("managed_schemas", ["public"]), f"{name}: managed_schemas") or ("public",)
    excluded = _string_list(top.get("excluded_schemas"), f"{name}: excluded_schemas")
    overlap = set(managed) & (set(excluded) | {TOOL_SCHEMA, CONVERSION_SCHEMA})
    if overlap:
        raise ConfigError(
            f"{name}: managed_schemas: {', '.join(sorted(overlap))} is excluded "
            f"(excluded_schemas, or the tool's own schemas '{TOOL_SCHEMA}' and '{CONVERSION_SCHEMA}')"
        )
    external = _string_list(top.get("external_schemas"), f"{name}: external_schemas")
    clash = set(external) & (set(managed) | set(excluded) | {TOOL_SCHEMA, "pg_catalog", "information_schema"})
    if clash:
        raise ConfigError(
            f"{name}: external_schemas: {', '.join(sorted(clash))} is also managed or excluded (an external "
            f"schema is referenced by the declared state but never owned or compared)"
        )
    online = top.get("online", True)
    if not isinstance(online, bool):
        raise ConfigError(f"{name}: online: expected true or false, got {online!r}")
    batch_rows = top.get("batch_rows", 5_000)
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ConfigError(f"{name}: batch_rows: expected a whole number 1 or more, got {batch_rows!r}")
    privileges = top.get("privileges", False)
    if not isinstance(privileges, bool):
        raise ConfigError(f"{name}: privileges: expected true or false, got {privileges!r}")
    variables = top.get("vars") or {}
    if not isinstance(variables, dict):
        raise ConfigError(f"{name}: vars: expected a mapping, got {type(variables).__name__}")
    targets = _targets(top.get("targets"), name)
    idle_minutes = _mapping(top.get("embedded"), f"{name}: embedded", ("idle_minutes",)).get("idle_minutes", 15)
    if isinstance(idle_minutes, bool) or not isinstance(idle_minutes, (int, float)) or not 0 <= idle_minutes < 10**6:
        raise ConfigError(f"{name}: embedded.idle_minutes: expected a number of minutes, 0 or more (0: stop the "
                          f"embedded server at the end of each command), got {idle_minutes!r}")

    return Config(
        project_dir=project_dir,
        config_file=config_file,
        database_url=_string(top.get("database_url"), f"{name}: database_url", allow_none=True),
        managed_schemas=managed,
        excluded_schemas=excluded,
        external_schemas=external,
        ignore=_ignore_globs(top.get("ignore"), name, managed),
        roles=_string_list(top.get("roles"), f"{name}: roles"),
        extensions=_string_list(top.get("extensions"), f"{name}: extensions"),
        scratch_mode=mode,
        scratch_server_url=_string(scratch.get("server_url"), f"{name}: scratch.server_url", allow_none=True),
        embedded_dir=_inside(project_dir, top.get("embedded_dir", ".reconcile"), f"{name}: embedded_dir"),
        embedded_idle_minutes=idle_minutes,
        migrations_dir=_inside(project_dir, top.get("migrations_dir", "migrations"), f"{name}: migrations_dir"),
        timeouts=timeouts,
        vars=variables,
        privileges=privileges,
        lint_ignored=_lint_ignored(top.get("lint"), name),
        tenant_columns=_tenant_columns(top.get("lint"), name),
        online=online,
        batch_rows=batch_rows,
        timezone=_timezone(top.get("timezone"), f"{name}: timezone"),
        targets=targets,
        waves=_waves(top.get("waves"), name, targets),
    )
