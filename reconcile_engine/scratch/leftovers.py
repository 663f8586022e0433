"""Stage 2: what killed runs left in the scratch space, found and removed by the next run.

Every scratch database and build role carries, as its COMMENT, the identity of the run that made it
(identity_comment): host, pid, when that process started, when the object was made. A run killed
with SIGKILL cannot drop its own, so every run that uses scratch space first sweeps the scratch
server (sweep): what belongs to a run that is gone is dropped, databases first (a build role cannot
be dropped while it owns one), then roles, and each removal is logged. A run is gone when
- it ran on this host and its pid is not running, or is now another process (started at another time);
- it ran elsewhere, was made more than VALID_FOR ago, and no session uses the object;
- it left no identity (an older reconcile): the object's build role is past its VALID UNTIL and no
  session uses the object.
Only names with reconcile's prefixes are looked at; whatever cannot be dropped (another role's, still
in use, still owning something) is left for a later sweep, silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import socket

import psycopg2

from ..connections import connected
from ..sqltext import quote_ident

log = logging.getLogger(__name__)

# The names of reconcile's scratch space on a server; nothing else is ever swept.
SCRATCH_PREFIX = "reconcile_scratch_"
ROLE_PREFIX = "reconcile_build_"
# How long a build role may log in (its VALID UNTIL); a run elsewhere older than that is taken for gone.
VALID_FOR = dt.timedelta(hours=12)

MADE_BY = "reconcile"
LONGEST_COMMENT = 4096  # a comment is read back from the server: anything longer was not written here
LONGEST_FIELD = 255


@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """Who made a scratch object. boot and pid_namespace tell two machines (or containers) that share
    a host name apart; start_ticks (since boot) tells a reused pid from the process that had it."""

    host: str
    pid: int
    started: str | None  # when the process started, UTC, for people
    start_ticks: int | None = None
    boot: str | None = None
    pid_namespace: str | None = None

    def same_place_as(self, other: RunIdentity) -> bool:
        """Whether its pid can be looked up here: same host, same boot, same pid namespace (where known)."""
        return self.host == other.host and all(
            mine is None or theirs is None or mine == theirs
            for mine, theirs in ((self.boot, other.boot), (self.pid_namespace, other.pid_namespace)))


@dataclasses.dataclass(frozen=True)
class Leftover:
    """An object a sweep removed, and why its run is taken for gone."""

    kind: str  # "database" or "role"
    name: str
    host: str | None  # None: it carried no identity (made by an older reconcile)
    pid: int | None
    why: str

    def __str__(self) -> str:
        what = "scratch database" if self.kind == "database" else "build role"
        return f"removed {what} {_shown(self.name)} {self.why}"


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None


def _process_start(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks since boot, as UTC text) of a running process, from /proc (Linux);
    None where /proc cannot tell (another system, another user's process hidden) or for a zombie."""
    stat = _read(f"/proc/{pid}/stat")
    boot_stat = _read("/proc/stat")
    if stat is None or boot_stat is None:
        return None
    # "pid (command) state ppid ...": the command may hold spaces and parentheses, so split after it.
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] == "Z" or not fields[19].isdigit():
        return None
    ticks = int(fields[19])  # field 22 of proc(5), counted from the state (field 3)
    boot_time = next((int(line.split()[1]) for line in boot_stat.splitlines() if line.startswith("btime ")), None)
    if boot_time is None:
        return None
    started = dt.datetime.fromtimestamp(boot_time + ticks / os.sysconf("SC_CLK_TCK"), dt.timezone.utc)
    return ticks, _utc_text(started)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists, but is another user's
        return True
    return True


@functools.lru_cache(maxsize=None)
def _identity_of(pid: int) -> RunIdentity:
    start = _process_start(pid)
    namespace = None
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        pass
    boot = _read("/proc/sys/kernel/random/boot_id")
    return RunIdentity(socket.gethostname(), pid, start[1] if start else None, start[0] if start else None,
                       boot.strip() if boot else None, namespace)


def this_run() -> RunIdentity:
    return _identity_of(os.getpid())  # keyed by pid: a forked child is another run


def _utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def identity_comment() -> str:
    """The COMMENT a scratch database or build role gets right after it is made."""
    return json.dumps({"made_by": MADE_BY, **dataclasses.asdict(this_run()),
                       "created": _utc_text(dt.datetime.now(dt.timezone.utc))}, sort_keys=True)


def _recorded(comment: str | None) -> tuple[RunIdentity, dt.datetime] | None:
    """(the identity, when the object was made) a comment records; None unless it is one this module
    wrote. Anyone who may comment on the object wrote it, so nothing in it is trusted further than
    that: fields are checked for type, size and printable text (they end up in a log line)."""
    if not comment or len(comment) > LONGEST_COMMENT:
        return None
    try:
        fields = json.loads(comment)
    except ValueError:
        return None
    if not isinstance(fields, dict) or fields.get("made_by") != MADE_BY:
        return None

    def text(key: str, optional: bool = True) -> str | None:
        value = fields.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value or len(value) > LONGEST_FIELD or not value.isprintable():
            raise ValueError(key)
        return value

    try:
        pid, ticks = fields.get("pid"), fields.get("start_ticks")
        if type(pid) is not int or not 0 < pid < 2**31 or not (ticks is None or (type(ticks) is int and ticks >= 0)):
            return None
        created = dt.datetime.fromisoformat(text("created", optional=False))
        if created.tzinfo is None:
            return None
        return RunIdentity(text("host", optional=False), pid, text("started"), ticks, text("boot"),
                           text("pid_namespace")), created
    except ValueError:
        return None


def _why_gone(run: RunIdentity, created: dt.datetime, in_use: bool) -> str | None:
    """Why the run that made an object is gone, or None when it may still be running."""
    me = this_run()
    who = f"pid {run.pid} on host {run.host}, started {run.started or 'at an unknown time'}"
    if run.same_place_as(me):
        if run.pid == me.pid and run.start_ticks == me.start_ticks:
            return None  # this run's own
        if not _running(run.pid):
            return f"left by a run that is gone ({who})"
        now_running = _process_start(run.pid)
        if run.start_ticks is None or now_running is None or now_running[0] == run.start_ticks:
            return None  # that process, or one this system cannot tell from it: alive
        return f"left by a run that is gone ({who}; pid {run.pid} is now a process started {now_running[1]})"
    if in_use or dt.datetime.now(dt.timezone.utc) - created <= VALID_FOR:
        return None
    hours = round(VALID_FOR.total_seconds() / 3600)
    return (f"left by a run on another host, made more than {hours} hours ago and unused "
            f"({who}, made {_utc_text(created)})")


def _shown(name: str) -> str:
    return name if name.isprintable() else repr(name)


def like_prefix(prefix: str) -> str:
    """A LIKE pattern for the names that start with `prefix`, its own wildcards escaped."""
    return prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"


# Each object with reconcile's prefix: its own comment; for a database owned by a build role, that
# role's comment (a database made just before its run was killed may not carry its own yet); whether
# its build role is past VALID UNTIL (the database's owner, or the role itself); whether a session uses it.
FOUND = """
SELECT 'database', d.datname, shobj_description(d.oid, 'pg_database'),
       CASE WHEN o.rolname LIKE %(roles)s THEN shobj_description(o.oid, 'pg_authid') END,
       o.rolname LIKE %(roles)s AND o.rolvaliduntil < now(),
       EXISTS (SELECT FROM pg_stat_activity a WHERE a.datname = d.datname)
  FROM pg_database d JOIN pg_roles o ON o.oid = d.datdba
 WHERE d.datname LIKE %(databases)s
UNION ALL
SELECT 'role', r.rolname, shobj_description(r.oid, 'pg_authid'), NULL, r.rolvaliduntil < now(),
       EXISTS (SELECT FROM pg_stat_activity a WHERE a.usename = r.rolname)
  FROM pg_roles r
 WHERE r.rolname LIKE %(roles)s
"""


def _judged(kind: str, name: str, comment: str | None, owner_comment: str | None, expired: bool,
            in_use: bool) -> Leftover | None:
    """The object as a Leftover when its run is gone, else None."""
    recorded = _recorded(comment) or _recorded(owner_comment)
    if recorded is not None:
        run, created = recorded
        why = _why_gone(run, created, in_use)
        return Leftover(kind, name, run.host, run.pid, why) if why else None
    if expired and not in_use:
        role = "its build role is" if kind == "database" else "it is"
        return Leftover(kind, name, None, None, f"left by an earlier reconcile ({role} past its VALID UNTIL "
                                                f"and no session uses it)")
    return None


def sweep(admin_url: str, connect_timeout_s: int) -> list[Leftover]:
    """Drop the scratch databases, then the build roles, on the server of `admin_url` whose run is
    gone; returns (and logs) what was removed. Best effort: what cannot be dropped stays."""
    removed = []
    with connected(admin_url, connect_timeout_s) as conn, conn.cursor() as cur:
        try:
            cur.execute(FOUND, {"databases": like_prefix(SCRATCH_PREFIX), "roles": like_prefix(ROLE_PREFIX)})
            found = cur.fetchall()
        except psycopg2.Error:
            return removed  # a server that will not say: nothing is swept, the run goes on
        leftovers = [leftover for row in found if (leftover := _judged(*row)) is not None]
        for kind in ("database", "role"):  # a role cannot be dropped while it owns a database
            for leftover in (leftover for leftover in leftovers if leftover.kind == kind):
                statement = (f"DROP DATABASE {quote_ident(leftover.name)} WITH (FORCE)" if kind == "database"
                             else f"DROP ROLE {quote_ident(leftover.name)}")
                try:
                    cur.execute(statement)
                except psycopg2.Error:
                    continue  # not ours to drop, still in use or owning something, or another sweep's
                removed.append(leftover)
                log.info("%s", leftover)
    return removed
