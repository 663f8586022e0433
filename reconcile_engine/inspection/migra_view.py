"""Stage 3 (inspect): the view migra diffs (schemainspect's inspection, kept to the managed schemas),
read beside our own snapshot of the same database."""

from __future__ import annotations

import dataclasses
import gc
import pickle
from concurrent.futures import ThreadPoolExecutor

from ..connections import sqlalchemy_connection
from .snapshot import CatalogSnapshot, Scope, read_snapshot


@dataclasses.dataclass
class InspectedDatabase:
    """Both views of one database: schemainspect's (what migra diffs) and our CatalogSnapshot."""

    inspected: object  # schemainspect.pg.PostgreSQL, kept to the managed schemas
    snapshot: CatalogSnapshot
    scope: Scope
    _pickled: bytes | None = dataclasses.field(default=None, repr=False, compare=False)

    def copy(self) -> "InspectedDatabase":
        """A copy whose schemainspect view can be adjusted (corrections do) without touching this one.

        One inspection is diffed up to three times (plan, reverse plan, re-diff after the rehearsal):
        it is pickled once, and each copy is unpickled with the garbage collector paused, since the
        collector would otherwise scan the growing heap again and again (4x slower at 2,500 tables).
        """
        if self._pickled is None:
            self._pickled = pickle.dumps(self.inspected, protocol=pickle.HIGHEST_PROTOCOL)
        collecting = gc.isenabled()
        gc.disable()
        try:
            inspected = pickle.loads(self._pickled)
        finally:
            if collecting:
                gc.enable()
        return dataclasses.replace(self, inspected=inspected, _pickled=None)  # its own, to be adjusted


def inspect_database(url: str, scope: Scope, connect_timeout_s: int = 10) -> InspectedDatabase:
    """Both views of one database, read at the same time on two connections: schemainspect mostly
    computes in Python while the snapshot's queries mostly wait on the server."""
    from schemainspect import get_inspector  # heavy: imported when a database is inspected
    from schemainspect.pg.obj import PROPS

    with ThreadPoolExecutor(max_workers=1) as beside:
        snapshot = beside.submit(read_snapshot, url, scope, connect_timeout_s)
        with sqlalchemy_connection(url, connect_timeout_s) as conn:
            inspected = get_inspector(conn)
        # migra can keep one schema or exclude one; we keep exactly the managed ones.
        wanted = set(scope.schemas)
        for prop in PROPS.split():
            setattr(inspected, prop, {k: v for k, v in getattr(inspected, prop).items() if v.schema in wanted})
        snapshot = snapshot.result()
    # Detached from its (closed) connection, the inspection is plain data that can be copied.
    inspected.c = inspected.engine = None
    inspected.dialect = "postgresql"
    return InspectedDatabase(inspected, snapshot, scope)


