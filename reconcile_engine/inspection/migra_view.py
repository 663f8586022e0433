"""Stage 3 (inspect): the view migra diffs (schemainspect's inspection, kept to the managed schemas),
read beside our own snapshot of the same database."""

from __future__ import annotations

import copyreg
import gc
import gzip
import io
import pickle
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from sys import intern

from ..connections import sqlalchemy_connection
from .snapshot import CatalogSnapshot, Scope, read_snapshot


def key_of(relation: str) -> str:
    """schema.name as schemainspect keys its relations: each part double-quoted, so a valid SQL name too."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in relation.split(".", 1))


class InspectedDatabase:
    """Both views of one database: schemainspect's (what migra diffs) and our CatalogSnapshot.

    schemainspect's view is tens of Python objects per table, and one inspection is diffed up to three
    times (plan, reverse plan, and a re-diff after a rehearsal that did not converge), each diff
    adjusting a copy of its own. So from its first copy on, the view is held only frozen (pickled and compressed: a few percent of the
    objects' memory): the first copy takes the view as it was read, each later one is thawed from the
    frozen one, and an inspection waiting for its next diff costs next to nothing. An inspection never
    copied (diffed once, in place) is never frozen.
    """

    def __init__(self, inspected, snapshot: CatalogSnapshot, scope: Scope, *, partial: frozenset[str] | None = None,
                 url: str | None = None, connect_timeout_s: int = 10):
        self._view = inspected  # schemainspect.pg.PostgreSQL, kept to the managed schemas; None once frozen
        self._frozen: bytes | None = None
        self._lock = threading.Lock()  # the reverse plan is diffed on a thread of its own
        self.snapshot = snapshot
        self.scope = scope
        # The relations its view was read without (scoped_view.py), None when read whole: such a view
        # serves only a diff that leaves them out (diff/scope.diff_on); whole() reads it again whole.
        self.partial = partial
        self._read_from = (url, connect_timeout_s)
        self._whole: InspectedDatabase | None = None

    @property
    def inspected(self):
        """schemainspect's view, to read or (on a copy) adjust: thawed again if it was frozen."""
        with self._lock:
            if self._view is None:
                self._view = _thawed(self._frozen)
            return self._view

    def copy(self) -> "InspectedDatabase":
        """A copy whose schemainspect view can be adjusted (corrections do) without touching this one."""
        with self._lock:
            handed_over = None
            if self._frozen is None:  # the first copy takes the view as read; this one keeps it frozen
                self._frozen = _frozen(self._view)
                handed_over = self._view
            self._view = None  # from now on only frozen (a view thawed for reading may still be read)
            frozen = self._frozen
        view = handed_over if handed_over is not None else _thawed(frozen)
        url, timeout = self._read_from
        # its own, to be adjusted; read without the same relations
        return InspectedDatabase(view, self.snapshot, self.scope, partial=self.partial, url=url, connect_timeout_s=timeout)

    def freeze(self) -> None:
        """Hold the view frozen from now on (each copy is then thawed): an inspection waiting for a diff
        that will not come until another whole view is read beside it."""
        with self._lock:
            if self._frozen is None:
                self._frozen = _frozen(self._view)
            self._view = None

    def whole(self) -> "InspectedDatabase":
        """This inspection, or, when its view was read without some relations, the database's whole
        one, read once (from the same database, as it is then: its snapshot is this one's)."""
        if self.partial is None:
            return self
        with self._lock:
            if self._whole is None:
                url, timeout = self._read_from
                self._whole = inspect_database(url, self.scope, timeout, snapshot=self.snapshot)
            return self._whole

    def without(self, relations: set[str], constraints: set[str] = frozenset(), *,
                keep_sequences: bool = False) -> "InspectedDatabase":
        """A copy without the `relations` ("schema.name") and all that belongs to them, nor the
        `constraints` ("schema.table.name"), in both views (see CatalogSnapshot.without)."""
        other = self.copy()
        _leave_out_relations(other.inspected, relations, constraints, keep_sequences)
        other.snapshot = self.snapshot.without(relations, constraints, keep_sequences=keep_sequences)
        if other.partial is not None:  # what it was read without, and is not cut out here, it still lacks
            other.partial = frozenset(other.partial - set(relations)) or None
        return other


def _frozen(view) -> bytes:
    """The view pickled (_ViewPickler) into a compressed stream, never whole and uncompressed."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as stream:
        _ViewPickler(stream).dump(view)
    return out.getvalue()


def _thawed(frozen: bytes):
    """A new live view from a frozen one, unpickled as it is decompressed. Unpickled with the garbage
    collector paused: it would otherwise scan the growing heap again and again (4x slower at 2,500
    tables)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return pickle.load(gzip.GzipFile(fileobj=io.BytesIO(frozen)))
    finally:
        if collecting:
            gc.enable()


class _ViewPickler(pickle.Pickler):
    """schemainspect's objects pickled as their attribute names (one tuple per shape, written once)
    and a tuple of values. Pickled by default, each object's state is a dict, which the unpickler
    keeps (memoized) until the whole view is loaded: a thaw peaked at twice the view it made, and a
    plan's memory peaks in the thaws of its reverse diff. At 2,500 tables a view of 25 MB now thaws
    with a peak of 36 MB (51 MB pickled by default and decompressed whole)."""

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._shapes: dict[tuple, tuple] = {}

    def reducer_override(self, obj):
        if not type(obj).__module__.startswith("schemainspect."):
            return NotImplemented
        attributes = obj.__dict__
        names = tuple(attributes)
        names = self._shapes.setdefault(names, names)
        # Made empty first (copyreg.__newobj__) and filled after: an object reached again while its
        # values are written (schemainspect's objects refer to each other) is then the same object.
        return copyreg.__newobj__, (type(obj),), (names, tuple(attributes.values())), None, None, _set_attributes


def _set_attributes(obj, state) -> None:
    """Fill an unpickled schemainspect object; its strings shared with the other views thawed (a
    reverse diff thaws two views of mostly the same names)."""
    names, values = state
    attributes = obj.__dict__
    for name, value in zip(names, values):
        attributes[name] = intern(value) if type(value) is str else value


def inspect_database(url: str, scope: Scope, connect_timeout_s: int = 10, *,
                     snapshot: CatalogSnapshot | None = None, like: CatalogSnapshot | None = None,
                     leaving_out: frozenset[str] | None = None) -> InspectedDatabase:
    """Both views of one database, read at the same time on two connections: schemainspect mostly
    computes in Python while the snapshot's queries mostly wait on the server. `snapshot`: ours, when
    the caller has just read it (a plan reads the target's first, to copy it): not read twice, nor held
    twice (at 10,000 tables a snapshot is about 70 MB); `like`: a snapshot the one read shares its keys
    with (snapshot.take_snapshot); `leaving_out`: relations ("schema.name") schemainspect's view is read
    without (scoped_view.py), for a diff that leaves them out (the snapshot is always whole)."""
    from schemainspect import get_inspector  # heavy: imported when a database is inspected
    from schemainspect.pg.obj import PROPS

    with ThreadPoolExecutor(max_workers=1) as beside:
        reading = beside.submit(read_snapshot, url, scope, connect_timeout_s, like) if snapshot is None else None
        with sqlalchemy_connection(url, connect_timeout_s) as conn:
            if leaving_out is None:
                inspected, lacking = get_inspector(conn), frozenset()
            else:
                from .scoped_view import read_without

                inspected, lacking = read_without(conn, leaving_out)
        # migra can keep one schema or exclude one; we keep exactly the managed ones.
        wanted = set(scope.schemas)
        for prop in PROPS.split():
            setattr(inspected, prop, {k: v for k, v in getattr(inspected, prop).items() if v.schema in wanted})
        if reading is not None:
            snapshot = reading.result()
    if scope.ignore:
        _leave_out(inspected, scope, snapshot.ignored_relations)
    # Detached from its (closed) connection, the inspection is plain data that can be copied.
    inspected.c = inspected.engine = None
    inspected.dialect = "postgresql"
    # Its pg_depend rows linked dependents while loading and are not read since; each SQLAlchemy row
    # would carry its result's metadata into every copy (tens of KB a row).
    inspected.deps = []
    _share_strings(inspected)
    return InspectedDatabase(inspected, snapshot, scope, partial=lacking or None, url=url,
                             connect_timeout_s=connect_timeout_s)


def _share_strings(inspected) -> None:
    """Each string of the view held once: every row read a new 'public', 'text', 'id', 'bigint'...
    (three quarters of the view's strings, a third of its memory, are repeats). A frozen view keeps
    the sharing (pickle writes a repeated object once), so its copies are smaller too. Only
    schemainspect's own objects and the plain dicts and lists in them are walked. Only the objects are
    remembered as walked (several collections hold each, and they refer to each other): remembering
    every dict and list too was, at 2,500 tables, 17 MB at the moment a plan's memory peaked."""
    walked: set[int] = set()
    pending = [getattr(inspected, name) for name in (*_RELATION_NAMED_BY, *_NAMED, "selectables", "schemas",
                                                     "extensions")]
    while pending:
        value = pending.pop()
        if type(value) is list:
            slots = enumerate(value)
        elif type(value) in (dict, OrderedDict):
            if any(type(k) is str and intern(k) is not k for k in value):
                # an equal key would keep its old string: refilled, in the same order
                items = [(intern(k) if type(k) is str else k, v) for k, v in value.items()]
                value.clear()
                value.update(items)
            slots = value.items()
        else:  # one of schemainspect's objects
            if id(value) not in walked:
                walked.add(id(value))
                pending.append(value.__dict__)
            continue
        for slot, item in list(slots):
            if type(item) is str:
                value[slot] = intern(item)
            elif type(item) in (dict, OrderedDict, list) or type(item).__module__.startswith("schemainspect."):
                pending.append(item)


# schemainspect's collections of pg_class objects and what belongs to them, by the attributes naming
# the relations an object is or belongs to: itself ("name"), its table ("table_name": an index's, a
# constraint's, a trigger's or a policy's table, the table owning a sequence), or both.
_RELATION_NAMED_BY = {
    "relations": ("name",), "tables": ("name",), "views": ("name",), "materialized_views": ("name",),
    "composite_types": ("name",), "privileges": ("name",), "indexes": ("name", "table_name"),
    "sequences": ("name", "table_name"), "constraints": ("table_name",), "triggers": ("table_name",),
    "rlspolicies": ("table_name",),
}
# Objects that belong to nothing else: matched by their own name against the globs.
_NAMED = ("functions", "enums", "types", "domains", "collations")


def _leave_out_relations(inspected, relations: set[str], constraints: set[str], keep_sequences: bool) -> None:
    def relation_kept(obj, attributes) -> bool:
        return relations.isdisjoint(
            f"{obj.schema}.{name}" for name in (getattr(obj, a, None) for a in attributes) if name is not None)

    for collection, attributes in _RELATION_NAMED_BY.items():
        if collection == "sequences" and keep_sequences:
            continue
        objects = getattr(inspected, collection)
        setattr(inspected, collection, {k: v for k, v in objects.items() if relation_kept(v, attributes)
                                        and f"{v.schema}.{getattr(v, 'table_name', '')}.{v.name}" not in constraints})
    inspected.selectables = {k: v for k, v in inspected.selectables.items()
                             if v.relationtype == "f" or relation_kept(v, ("name",))}


def _leave_out(inspected, scope: Scope, ignored_relations: frozenset) -> None:
    """Drop from schemainspect's view what an ignore glob leaves out, so migra never plans anything
    about it, not even its DROP. Which relations are left out was decided once, by our snapshot of
    the same database (`ignored_relations`, partitions and owned sequences followed); here they are
    only looked up by name. Functions and types belong to nothing, so their names meet the globs."""
    def relation_kept(obj, attributes) -> bool:
        return ignored_relations.isdisjoint(
            f"{obj.schema}.{name}" for name in (getattr(obj, a, None) for a in attributes) if name is not None)

    def kept(obj) -> bool:
        return not scope.ignores([f"{obj.schema}.{obj.name}"])

    for collection, attributes in _RELATION_NAMED_BY.items():
        objects = getattr(inspected, collection)
        setattr(inspected, collection, {k: v for k, v in objects.items() if relation_kept(v, attributes)})
    for collection in _NAMED:
        setattr(inspected, collection, {k: v for k, v in getattr(inspected, collection).items() if kept(v)})
    # selectables holds relations and functions together: each kept as its own collection keeps it
    inspected.selectables = {k: v for k, v in inspected.selectables.items()
                             if (kept(v) if v.relationtype == "f" else relation_kept(v, ("name",)))}
