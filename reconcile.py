#!/usr/bin/env python3
"""reconcile: the command-line entry. Parsing and exit codes live in reconcile_engine.cli; this stays thin."""

import sys


def main() -> None:
    from reconcile_engine.cli import run

    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
