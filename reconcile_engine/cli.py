"""Argument parsing and error reporting: run(args) -> exit code. reconcile.py calls sys.exit with it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from pathlib import Path

from . import command
from .version import __version__
from .errors import EXIT_ERROR, EXIT_OK, ReconcileError, UsageError
from .connections import cancel_statements_on_interrupt, redact


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which would read as 'changes found': raise instead."""

    def error(self, message: str):
        raise UsageError(f"{message} (see 'reconcile {self.prog.split(' ', 1)[-1]} --help')"
                         if " " in self.prog else f"{message} (see 'reconcile --help')")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


NO_CACHE_HELP = ("build the declared state in a scratch database even if the one cached under .reconcile/cache "
                 "for these files, this as-of date and this server version matches the target")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", type=Path, default=Path("."), help="project folder (default: current folder)")
    common.add_argument("--config", type=Path, help="config file (default: PROJECT/reconcile.yaml)")
    common.add_argument("--database-url", help="target database (default: $DATABASE_URL, then reconcile.yaml, "
                                               "then an embedded server under .reconcile/)")
    common.add_argument("--format", choices=("text", "json"), default="text")
    common.add_argument("--verbose", action="store_true", help="show a traceback on unexpected errors")

    parser = _Parser(prog="reconcile", description="Declarative schema-as-code for PostgreSQL. "
                     "Exit codes: 0 ok, 2 changes or drift, 1 error.")
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    plan = commands.add_parser("plan", parents=[common], help="diff the target against the declared files, "
                               "rehearse, and write a reviewed plan under migrations/")
    plan.add_argument("--name", default="plan", help="name part of the plan file (default: plan)")
    plan.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    plan.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when there are changes")
    plan.add_argument("--as-of", type=_date, help="date that places partition windows (default: today)")
    plan.add_argument("--data-before", action="append", type=Path, metavar="SQL_FILE",
                      help="hand-written data statements to run before the schema changes (repeatable)")
    plan.add_argument("--data-after", action="append", type=Path, metavar="SQL_FILE",
                      help="hand-written data statements to run after the schema changes (repeatable)")
    plan.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)

    rehearse = commands.add_parser("rehearse", parents=[common], help="rehearse a plan file as it is now (after "
                                   "a hand edit) and, when it reaches the declared state, rewrite its header "
                                   "and checksum so that apply accepts it")
    rehearse.add_argument("plan", type=Path, metavar="PLAN",
                          help="a plan file under migrations/ (a relative path is taken from the project folder)")

    apply = commands.add_parser("apply", parents=[common], help="apply pending plans, each in one transaction")
    apply.add_argument("--allow-destructive", action="store_true",
                       help="apply destructive statements even if the plan does not mark them approved")

    rollback = commands.add_parser("rollback", parents=[common], help="apply the rehearsed reverse of the last "
                                   "applied plan (refused if the database moved on since)")
    rollback.add_argument("--allow-destructive", action="store_true",
                          help="roll back even if the reverse drops data written since (a column added by the plan)")

    drift = commands.add_parser("drift", parents=[common], help="compare the target with the declared files; "
                                "exit 2 on drift")
    drift.add_argument("--as-of", type=_date, help="date that places partition windows (default: today)")
    drift.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)

    lint = commands.add_parser("lint", parents=[common], help="squawk on plan files (default: every plan "
                               "under migrations/); exit 2 when it finds something")
    lint.add_argument("plans", nargs="*", type=Path, metavar="PLAN")

    maintain = commands.add_parser("maintain", parents=[common], help="for cron: create the current and "
                                   "upcoming declared partitions (additive only, no reviewed plan)")
    maintain.add_argument("--as-of", type=_date, help="date that places partition windows (default: today)")

    commands.add_parser("test", parents=[common], help="run the policy tests (policies/tests/*.yaml) on the "
                        "declared state; exit 1 if any fails")

    commands.add_parser("status", parents=[common], help="which plans are applied and which are pending")
    return parser


def _dispatch(ns: argparse.Namespace) -> int:
    options = command.Options(
        project=ns.project, config_file=ns.config, database_url=ns.database_url,
        as_of=getattr(ns, "as_of", None), format=ns.format, use_cache=not getattr(ns, "no_cache", False),
    )
    if ns.command == "plan":
        return command.plan(options, name=ns.name, dry_run=ns.dry_run, detailed_exitcode=ns.detailed_exitcode,
                            data_before=ns.data_before, data_after=ns.data_after)
    if ns.command == "rehearse":
        return command.rehearse_plan(options, ns.plan)
    if ns.command == "apply":
        return command.apply(options, allow_destructive=ns.allow_destructive)
    if ns.command == "drift":
        return command.drift(options)
    if ns.command == "rollback":
        return command.rollback(options, allow_destructive=ns.allow_destructive)
    if ns.command == "test":
        return command.test(options)
    if ns.command == "lint":
        return command.lint(options, ns.plans)
    if ns.command == "maintain":
        return command.maintain(options)
    return command.status(options)


def run(args: list[str]) -> int:
    verbose = "--verbose" in args
    cancel_statements_on_interrupt()  # this process is ours: Ctrl-C cancels the statement on the server
    try:
        ns = build_parser().parse_args(args)
        return _dispatch(ns)
    except SystemExit as exc:  # --help and --version
        return EXIT_OK if exc.code in (0, None) else EXIT_ERROR
    except ReconcileError as exc:
        for line in exc.details:
            print(redact(line), file=sys.stderr)
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        if verbose and exc.__cause__ is not None:
            print(redact("".join(traceback.format_exception(exc.__cause__))), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; scratch databases were dropped, nothing was applied", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug, or a library error not yet translated at its boundary
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: unexpected {type(exc).__name__}: {redact(first)} (run with --verbose for details)",
              file=sys.stderr)
        if verbose:
            print(redact(traceback.format_exc()), file=sys.stderr)
        return EXIT_ERROR
