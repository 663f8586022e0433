"""Stage 1b: partition specs (partitions/*.yaml) -> desired SQL, for a given as-of date.

A spec declares a rolling window of range partitions: `keep` periods up to and including the
as-of period, plus `premake` periods ahead. The parent table itself is declared in schema/.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import string
from pathlib import Path

import yaml

from ..errors import DeclaredStateError
from ..sqltext import jinja_environment, quote_ident

SPEC_KEYS = ("table", "schema", "column", "interval", "keep", "premake", "default_partition", "naming",
             "expire", "archive_schema", "auto_detach")
# Months per period, and the naming pattern each interval gets by default.
INTERVALS = {"yearly": 12, "quarterly": 3, "monthly": 1}
DEFAULT_NAMING = {
    "yearly": "{table}_{year}",
    "quarterly": "{table}_{year}_q{quarter}",
    "monthly": "{table}_{year}_{month:02d}",
}
EXPIRE = ("detach", "drop")
NAMING_FIELDS = {"table", "year", "quarter", "month"}


@dataclasses.dataclass(frozen=True)
class PartitionSpec:
    file: Path
    display: str  # the spec's path as shown to the user
    schema: str
    table: str
    column: str
    interval: str
    keep: int
    premake: int
    default_partition: bool = False
    naming: str = "{table}_{year}"
    expire: str = "detach"  # detach: move to archive_schema, rows kept; drop: destructive, gated
    archive_schema: str = "archive"
    auto_detach: bool = False  # let `maintain` detach expired partitions without a reviewed plan

    @property
    def months(self) -> int:
        return INTERVALS[self.interval]

    @property
    def default_partition_name(self) -> str:
        return f"{self.table}_default"


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


def _name(raw: dict, key: str, default: str | None, where: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise DeclaredStateError(f"{where}: {key}: required, a name" if default is None else
                                 f"{where}: {key}: expected a name, got {value!r}")
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
    default_partition = raw.get("default_partition", False)
    if not isinstance(default_partition, bool):
        raise DeclaredStateError(f"{display}: default_partition: expected true or false, got {default_partition!r}")
    expire = raw.get("expire", "detach")
    if expire not in EXPIRE:
        raise DeclaredStateError(f"{display}: expire: expected one of {', '.join(EXPIRE)}, got {expire!r}")
    auto_detach = raw.get("auto_detach", False)
    if not isinstance(auto_detach, bool):
        raise DeclaredStateError(f"{display}: auto_detach: expected true or false, got {auto_detach!r}")
    if auto_detach and expire != "detach":
        raise DeclaredStateError(f"{display}: auto_detach: only with expire: detach (a drop needs a reviewed plan)")
    naming = _name(raw, "naming", DEFAULT_NAMING[interval], display)
    problem = f"{display}: naming: {naming!r} is not a pattern of {{table}}, {{year}}, {{quarter}}, {{month}}"
    try:
        # Plain fields only: str.format would also follow attributes ({table.__class__}) and indexes.
        fields = {field for _, field, _, _ in string.Formatter().parse(naming) if field is not None}
        if not fields <= NAMING_FIELDS:
            raise DeclaredStateError(problem)
        naming.format(table="t", year=2000, quarter=1, month=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise DeclaredStateError(problem) from exc
    return PartitionSpec(
        file=path, display=display,
        schema=_name(raw, "schema", "public", display),
        table=raw["table"],
        column=raw["column"],
        interval=interval,
        keep=keep,
        premake=_count(raw, "premake", 1, display),
        default_partition=default_partition,
        naming=naming,
        expire=expire,
        archive_schema=_name(raw, "archive_schema", "archive", display),
        auto_detach=auto_detach,
    )


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_start(spec: PartitionSpec, day: dt.date) -> dt.date:
    """The first day of the period that holds `day`."""
    month = ((day.month - 1) // spec.months) * spec.months + 1
    return dt.date(day.year, month, 1)


def partition_name(spec: PartitionSpec, start: dt.date) -> str:
    return spec.naming.format(table=spec.table, year=start.year, quarter=(start.month - 1) // 3 + 1,
                              month=start.month)


def partitions_for(spec: PartitionSpec, as_of: dt.date) -> list[Partition]:
    """The window: the as-of period and the keep-1 periods before it, plus premake periods ahead."""
    current = period_start(spec, as_of)
    partitions = []
    for offset in range(-(spec.keep - 1), spec.premake + 1):
        start = _add_months(current, offset * spec.months)
        partitions.append(Partition(partition_name(spec, start), start, _add_months(start, spec.months)))
    return partitions


def render_spec(spec: PartitionSpec, as_of: dt.date) -> str:
    template = jinja_environment().get_template("partitions.sql.j2")
    return template.render(
        spec_file=spec.display,
        as_of=as_of.isoformat(),
        interval=spec.interval,
        parent=f"{quote_ident(spec.schema)}.{quote_ident(spec.table)}",
        partitions=[
            {"name": f"{spec.schema}.{p.name}", "start": p.start.isoformat(), "end": p.end.isoformat()}
            for p in partitions_for(spec, as_of)
        ],
        default_partition=f"{spec.schema}.{spec.default_partition_name}" if spec.default_partition else None,
    )
