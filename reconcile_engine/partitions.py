"""Stage 1b: partition specs (partitions/*.yaml) -> desired SQL, for a given as-of date."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import yaml

from .errors import DeclaredStateError
from .sqltext import jinja_environment, quote_ident

SPEC_KEYS = ("table", "schema", "column", "interval", "keep", "premake")
INTERVALS = ("yearly",)


@dataclasses.dataclass(frozen=True)
class PartitionSpec:
    file: Path
    schema: str
    table: str
    column: str
    interval: str
    keep: int
    premake: int


@dataclasses.dataclass(frozen=True)
class Partition:
    name: str
    start: dt.date
    end: dt.date


def _count(raw: dict, key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DeclaredStateError(f"{where}: {key}: expected a whole number 0 or more, got {value!r}")
    return value


def read_spec(path: Path, display: str) -> PartitionSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{display}:{mark.line + 1}" if mark else display
        raise DeclaredStateError(f"{where}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(raw, dict):
        raise DeclaredStateError(f"{display}: expected a mapping with keys {', '.join(SPEC_KEYS)}")
    for key in raw:
        if key not in SPEC_KEYS:
            raise DeclaredStateError(f"{display}: unknown key {key!r} (known: {', '.join(SPEC_KEYS)})")
    for key in ("table", "column"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            raise DeclaredStateError(f"{display}: {key}: required, the name of the partitioned table's {key}")
    interval = raw.get("interval", "yearly")
    if interval not in INTERVALS:
        raise DeclaredStateError(f"{display}: interval: expected one of {', '.join(INTERVALS)}, got {interval!r}")
    keep = _count(raw, "keep", 7, display)
    if keep < 1:
        raise DeclaredStateError(f"{display}: keep: at least 1 period must be kept, got {keep}")
    return PartitionSpec(
        file=path,
        schema=str(raw.get("schema", "public")),
        table=raw["table"],
        column=raw["column"],
        interval=interval,
        keep=keep,
        premake=_count(raw, "premake", 1, display),
    )


def partitions_for(spec: PartitionSpec, as_of: dt.date) -> list[Partition]:
    """The window: the as-of year and the keep-1 years before it, plus premake years ahead."""
    first = as_of.year - spec.keep + 1
    last = as_of.year + spec.premake
    return [
        Partition(f"{spec.table}_{year}", dt.date(year, 1, 1), dt.date(year + 1, 1, 1))
        for year in range(first, last + 1)
    ]


def render_spec(spec: PartitionSpec, display: str, as_of: dt.date) -> str:
    template = jinja_environment().get_template("partitions.sql.j2")
    return template.render(
        spec_file=display,
        as_of=as_of.isoformat(),
        interval=spec.interval,
        parent=f"{quote_ident(spec.schema)}.{quote_ident(spec.table)}",
        partitions=[
            {"name": f"{spec.schema}.{p.name}", "start": p.start.isoformat(), "end": p.end.isoformat()}
            for p in partitions_for(spec, as_of)
        ],
    )
