#!/usr/bin/env python3
"""reconcile: the command-line entry. Parsing and exit codes live in reconcile_engine.cli; this stays thin."""

import gc
import sys

# A plan reads tens of thousands of catalog objects into long-lived Python objects; with the default
# threshold (700 allocations) the garbage collector rescans them so often that it takes a third of
# the diff's time at 2,500 tables. The process is short-lived and makes few reference cycles.
GC_THRESHOLD = (50_000, 20, 20)


def main() -> None:
    from reconcile_engine.cli import run

    gc.set_threshold(*GC_THRESHOLD)

    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
