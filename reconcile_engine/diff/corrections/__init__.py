"""Corrections to migra's diff, registered per object kind (the shape of alembic's autogenerate/compare):
each module below corrects one kind of object and lists its corrections in CORRECTIONS.

migra 3.0 is unmaintained and wrong in known ways. Each correction (base.py) is a small, stateless,
named unit; the diff runs them in the order of KINDS, then in each module's order.
"""

from __future__ import annotations

from . import partitions
from . import retention
from . import enums
from . import ranges
from . import sequences
from . import tables
from . import functions
from . import columns
from . import viewtext
from . import views
from . import rls
from . import matviews
from . import comments
from . import privileges
from .base import Correction

# Object kinds in the order their corrections run (rewrites, then additions, each in this order).
KINDS = (partitions, retention, enums, ranges, sequences, tables, functions, columns, viewtext, views, rls, matviews, comments, privileges)


def all_corrections() -> tuple[Correction, ...]:
    """Every correction, in the order they run. They keep no state, so one set serves every diff."""
    return tuple(correction for kind in KINDS for correction in kind.CORRECTIONS)
