"""Beside the pipeline: the process's memory given back to the system as a plan goes, so that its
resident peak is what it holds rather than what it once held.

Python hands what it frees to the C library's allocator, which on Linux (glibc) keeps it: in one
arena per thread that allocated it, unusable by the others, and mostly never returned. A plan reads
two databases, diffs, and thaws views again on other threads, each phase freeing most of what the
one before held. At 2,500 tables, the two together took a plan's resident peak from 205 MB to about
180 MB. Elsewhere (macOS, musl) the allocator is left as it is.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import sys

_M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)
ARENAS = 2  # threads beyond them share: they mostly wait on the server, and Python runs one at a time


@functools.cache  # loaded once: a plan calls it after each phase
def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def share_arenas() -> None:
    """Before the threads start: what one thread frees, the next can use."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, ARENAS)


def give_back_freed() -> None:
    """After a phase that let go of much (an inspection's rows, a diff's views): it is freed now, and
    the free pages returned. schemainspect's objects refer to each other, so a view let go is freed
    only by the cycle collector, whose full pass may otherwise come long after (about a second at
    10,000 tables)."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
