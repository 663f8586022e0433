"""Argument parsing and error reporting: run(args) -> exit code. reconcile.py calls sys.exit with it."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import re
import signal
import sys
import traceback
from pathlib import Path

import psycopg2

from . import api, fleet, fleet_targets, render, render_servers
from .config import load_config
from .connections import cancel_statements_on_interrupt, first_line, redact
from .declared.new_project import PRESETS
from .errors import (
    EXIT_CHANGES, EXIT_ERROR, EXIT_INTERNAL, EXIT_OK, ReconcileError, StopRequested, UsageError, interruption,
)
from .server_command import server_status, server_stop
from .version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which would read as 'changes found': raise instead."""

    def error(self, message: str):
        raise UsageError(f"{message} (see 'reconcile {self.prog.split(' ', 1)[-1]} --help')"
                         if " " in self.prog else f"{message} (see 'reconcile --help')")


# Only YYYY-MM-DD: Python 3.11's fromisoformat also takes 20261126 and 2026-W48-4, forms a reader of
# the command (or of the plan header it is recorded in) could take for something else.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _date(text: str) -> dt.date:
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


AS_OF_HELP = ("date (YYYY-MM-DD) that places partition windows (default: today in the timezone: of "
              "reconcile.yaml, else in UTC)")


NO_CACHE_HELP = ("build the declared state in a scratch database even if the one cached under .reconcile/cache "
                 "for these files, this as-of date and this server version matches the target")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", type=Path, default=Path("."), help="project folder (default: current folder)")
    common.add_argument("--config", type=Path, help="config file (default: PROJECT/reconcile.yaml)")
    common.add_argument("--database-url", help="target database (default: $DATABASE_URL, then reconcile.yaml, "
                                               "then an embedded server under .reconcile/)")
    common.add_argument("--target", metavar="NAME", help="the target of that name under targets: in reconcile.yaml "
                                                         "(instead of --database-url)")
    common.add_argument("--format", choices=render.FORMATS, default="text",
                        help="text (default), json, markdown (for a pull request comment), or prometheus "
                             "(drift only: gauges for node-exporter's textfile collector)")
    common.add_argument("--verbose", action="store_true", help="show a traceback on unexpected errors")

    parser = _Parser(prog="reconcile", description="Declarative schema-as-code for PostgreSQL. "
                     "Exit codes: 0 ok; 1 error, refusal or interruption (one line says which, and what to run next); "
                     "2 changes or drift; 3 a bug in reconcile.")
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    plan = commands.add_parser("plan", parents=[common], help="diff the target against the declared files, "
                               "rehearse, and write a reviewed plan under migrations/")
    plan.add_argument("--name", default="plan", help="name part of the plan file (default: plan)")
    plan.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    plan.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when there are changes")
    plan.add_argument("--as-of", type=_date, help=AS_OF_HELP)
    plan.add_argument("--data-before", action="append", type=Path, metavar="SQL_FILE",
                      help="hand-written data statements to run before the schema changes (repeatable)")
    plan.add_argument("--data-after", action="append", type=Path, metavar="SQL_FILE",
                      help="hand-written data statements to run after the schema changes (repeatable)")
    plan.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    plan.add_argument("--baseline", action="store_true",
                      help="without the target: write migrations/baselines/<stamp>_baseline.sql, the declared "
                           "state built from an empty database (proven equal to the replay of every plan), which "
                           "'check' replays in place of the plans it covers")

    rehearse = commands.add_parser("rehearse", parents=[common], help="rehearse a plan file as it is now (after "
                                   "a hand edit) and, when it reaches the declared state, rewrite its header "
                                   "and checksum so that apply accepts it")
    rehearse.add_argument("plan", type=Path, metavar="PLAN",
                          help="a plan file under migrations/ (a relative path is taken from the project folder)")

    apply = commands.add_parser("apply", parents=[common], help="apply pending plans, each in one transaction")
    apply.add_argument("--allow-destructive", action="store_true",
                       help="apply destructive statements even if the plan does not mark them approved")
    apply.add_argument("--rerun-data-steps", action="store_true",
                       help="run again the data steps that an earlier apply of the same plan ran (it was rolled "
                            "back since); without it they are skipped")

    rollback = commands.add_parser("rollback", parents=[common], help="apply the rehearsed reverse of the last "
                                   "applied plan (refused if the database moved on since)")
    rollback.add_argument("--allow-destructive", action="store_true",
                          help="roll back even if the reverse drops data written since (a column added by the plan)")

    repair = commands.add_parser("repair", parents=[common], help="show what an apply that began and did not "
                                 "finish left and, with --yes, record the plan as applied with it, so that apply "
                                 "stops resuming it and the next plan starts from the truth")
    repair.add_argument("plan", nargs="?", metavar="PLAN",
                        help="the plan file (default: the only one an apply began and did not finish)")
    repair.add_argument("--yes", action="store_true", help="record it (without: show what it left, record nothing)")

    drift = commands.add_parser("drift", parents=[common], help="compare the target with the declared files; "
                                "exit 2 on drift")
    drift.add_argument("--as-of", type=_date, help=AS_OF_HELP)
    drift.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)

    lint = commands.add_parser("lint", parents=[common], help="squawk on plan files (default: every plan "
                               "under migrations/); exit 2 when it finds something")
    lint.add_argument("plans", nargs="*", type=Path, metavar="PLAN")
    lint.add_argument("--no-database", action="store_true",
                      help="connect to nothing (a pre-commit hook): admit the declared files as plan does, "
                           "refusing what is not a definition with its file:line, and squawk on the plans; "
                           "the security rules, which need the declared state built, are left out")

    maintain = commands.add_parser("maintain", parents=[common], help="for cron: create the current and "
                                   "upcoming declared partitions (additive only, no reviewed plan)")
    maintain.add_argument("--as-of", type=_date, help=AS_OF_HELP)

    commands.add_parser("test", parents=[common], help="run the policy tests (policies/tests/*.yaml) on the "
                        "declared state; exit 1 if any fails")

    check = commands.add_parser("check", parents=[common], help="for CI, without the target: replay the "
                                "committed plans on a scratch server and check they reach the declared files; "
                                "exit 1 on any failure")
    check.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)

    commands.add_parser("status", parents=[common], help="which plans are applied and which are pending")

    pull = commands.add_parser("pull", parents=[common], help="write the declared files from the target's "
                               "schema (adopting an existing database); refuses to overwrite other files")
    pull.add_argument("--force", action="store_true", help="overwrite declared files that differ, and remove the "
                      "declared files pull does not write (in schema/, views/, policies/, partitions/)")
    pull.add_argument("--as-of", type=_date, help=AS_OF_HELP)

    init = commands.add_parser("init", parents=[common], help="write a new project in --project (default: the "
                               "current folder): the declared folders, migrations/ and a commented reconcile.yaml")
    init.add_argument("--preset", choices=PRESETS, default="plain",
                      help="plain (default), or supabase: Supabase's own schemas left alone, its API roles, "
                           "Prisma's tenant column names for the lint")
    for name, command in commands.choices.items():
        try:
            _add_fleet_flags(command, shown=name in fleet_targets.FLEET_COMMANDS)
        except argparse.ArgumentError:  # a command with options of its own by these names keeps them
            pass
    _add_server_parser(commands)
    return parser


def _add_server_parser(commands) -> None:
    """`reconcile server status|stop`: its own small parser (no target: the project's embedded servers)."""
    server = commands.add_parser("server", help="the project's embedded PostgreSQL servers, kept running between "
                                 "commands: status (running, data folder, port, idle timer) or stop (now, once the "
                                 "commands using them end)")
    server.add_argument("action", choices=("status", "stop"))
    server.add_argument("--project", type=Path, default=Path("."), help="project folder (default: current folder)")
    server.add_argument("--config", type=Path, help="config file (default: PROJECT/reconcile.yaml)")
    server.add_argument("--format", choices=render_servers.FORMATS, default="text", help="text (default) or json")
    server.add_argument("--verbose", action="store_true", help="show a traceback on unexpected errors")


def _add_fleet_flags(command: argparse.ArgumentParser, shown: bool) -> None:
    """--all-targets, --shard, --parallel: documented on the fleet's commands; accepted (to be refused with
    a sentence, see fleet_targets.check_flags) by the others."""
    def described(text: str) -> str:
        return text if shown else argparse.SUPPRESS

    command.add_argument("--all-targets", action="store_true", help=described(
        "run on every target under targets: in reconcile.yaml, in parallel (apply: in waves, stopping at the "
        "first failure); one summary table"))
    command.add_argument("--shard", type=fleet_targets.Shard.parse, metavar="I/N", help=described(
        "with --all-targets: only the targets of shard I of N (a CI matrix job's share; each target is in "
        "exactly one shard)"))
    command.add_argument("--parallel", type=fleet_targets.parallel_count, metavar="K", help=described(
        f"with --all-targets: how many targets run at once (default {fleet_targets.DEFAULT_PARALLEL}, at most "
        f"{fleet_targets.MOST_PARALLEL})"))


def _say(text: str) -> None:
    """Print to stdout; when its reader has gone (`reconcile drift | head`), go on without it: the
    command's work (an apply half-way, say) must not stop because nobody reads its progress."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Later writes (and the interpreter's final flush) go nowhere instead of failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Notes(logging.Handler):
    """What the engine did on the side (leftovers.py: what a sweep removed), as `note:` lines on standard
    error, the stream of the moment (a test may have replaced it since the handler was installed)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _warn(f"note: {redact(record.getMessage())}")
        except Exception:
            self.handleError(record)


def _notes_to_stderr() -> None:
    engine = logging.getLogger("reconcile_engine")  # every module's logger (__name__) is under it
    if not any(isinstance(handler, _Notes) for handler in engine.handlers):  # run() may run again
        engine.addHandler(_Notes(logging.INFO))
    engine.setLevel(logging.INFO)
    engine.propagate = False


def _dispatch(ns: argparse.Namespace) -> int:
    """Run the command through the API, print its result, and say how it ended as an exit code."""
    if ns.command == "server":  # the project's embedded servers: no target, no declared file read
        config = load_config(ns.project, ns.config)
        report = server_stop(config) if ns.action == "stop" else server_status(config)
        _say(render_servers.render(report, ns.format))
        return EXIT_OK
    # getattr: a command without the common options (or the fleet's) has none of them to check.
    fleet_targets.check_flags(ns.command, all_targets=getattr(ns, "all_targets", False),
                              shard=getattr(ns, "shard", None), parallel=getattr(ns, "parallel", None),
                              target=getattr(ns, "target", None), database_url=getattr(ns, "database_url", None),
                              format=getattr(ns, "format", "text"))
    if ns.format == "prometheus" and ns.command not in render.PROMETHEUS_COMMANDS:
        raise UsageError(f"--format prometheus is for {', '.join(render.PROMETHEUS_COMMANDS)} only, not "
                         f"{ns.command} (see 'reconcile {ns.command} --help')")
    if ns.command == "init":  # before there is a project to load
        _say(render.render(api.init(ns.project, preset=ns.preset), ns.format))
        return EXIT_OK
    project = api.load_project(ns.project, ns.config)
    if getattr(ns, "all_targets", False):
        return _dispatch_fleet(ns, project)
    url = ns.database_url
    if getattr(ns, "target", None):
        url = fleet_targets.target_url(fleet_targets.named_target(project.config, ns.target))
    as_of = getattr(ns, "as_of", None)
    use_cache = not getattr(ns, "no_cache", False)
    # Progress goes with the text; beside JSON or markdown it goes to standard error, so that
    # standard output stays one document.
    progress = _say if ns.format == "text" else _warn
    context = {}
    if ns.command == "plan":
        if ns.baseline and (ns.dry_run or ns.data_before or ns.data_after or ns.as_of):
            raise UsageError("--baseline takes none of --dry-run, --data-before, --data-after, --as-of (its as-of "
                             "date is the newest plan's)")
        result = api.plan(project, url, name=ns.name, as_of=as_of, write=not ns.dry_run, data_before=ns.data_before,
                          data_after=ns.data_after, use_cache=use_cache, baseline=ns.baseline)
        context = {"project_dir": project.path, "written": "wrote"}
        exit_code = EXIT_CHANGES if ns.detailed_exitcode and result.changes else EXIT_OK
    elif ns.command == "rehearse":
        result = api.rehearse(project, ns.plan, url)
        context = {"project_dir": project.path, "written": "rewrote"}
        exit_code = EXIT_OK
    elif ns.command == "apply":
        result = api.apply(project, url, allow_destructive=ns.allow_destructive,
                           rerun_data_steps=ns.rerun_data_steps, on_progress=progress)
        exit_code = EXIT_OK
    elif ns.command == "rollback":
        result = api.rollback(project, url, allow_destructive=ns.allow_destructive, on_progress=progress)
        exit_code = EXIT_OK
    elif ns.command == "repair":
        result = api.repair(project, url, plan=ns.plan, record=ns.yes)
        exit_code = EXIT_OK
    elif ns.command == "drift":
        result = api.drift(project, url, as_of=as_of, use_cache=use_cache)
        exit_code = EXIT_OK if result.in_sync else EXIT_CHANGES
    elif ns.command == "test":
        result = api.policy_tests(project, url, as_of=as_of)
        exit_code = EXIT_ERROR if result.failed else EXIT_OK
    elif ns.command == "check":  # never the target: url is not passed
        result = api.check(project, use_cache=use_cache)
        exit_code = EXIT_OK if result.ok else EXIT_ERROR
    elif ns.command == "lint":
        result = api.lint(project, ns.plans, url, as_of=as_of, database=not ns.no_database)
        exit_code = EXIT_CHANGES if result.findings else EXIT_OK
    elif ns.command == "pull":
        result = api.pull(project, url, force=ns.force, as_of=as_of)
        exit_code = EXIT_OK
    elif ns.command == "maintain":
        result = api.maintain(project, url, as_of=as_of, on_progress=progress)
        exit_code = EXIT_OK
    else:
        result = api.status(project, url)
        exit_code = EXIT_OK
    for line in render.warnings(result, context.get("project_dir")):
        _warn(line)
    _say(render.render(result, ns.format, **context))
    return exit_code


def _dispatch_fleet(ns: argparse.Namespace, project: api.Project) -> int:
    """The command on every target (of the shard): one table or one JSON document on standard output;
    beside the text, each target's progress on standard error, prefixed with its name."""
    if ns.command == "drift":
        options = {"as_of": ns.as_of, "use_cache": not ns.no_cache}
    elif ns.command == "maintain":
        options = {"as_of": ns.as_of}
    elif ns.command == "apply":
        options = {"allow_destructive": ns.allow_destructive, "rerun_data_steps": ns.rerun_data_steps}
    else:
        options = {}
    progress = (lambda name, line: _warn(f"{name}: {line}")) if ns.format == "text" else None
    report = fleet.run_across(project, ns.command, fleet_targets.select_targets(project.config, ns.shard),
                              ns.parallel or fleet_targets.DEFAULT_PARALLEL, shard=ns.shard, on_progress=progress,
                              **options)
    _say(render.render(report, ns.format))
    return report.exit_code


def run(args: list[str]) -> int:
    verbose = "--verbose" in args
    cancel_statements_on_interrupt()  # this process is ours: Ctrl-C cancels the statement on the server
    _notes_to_stderr()
    previous_sigterm = _stop_on_sigterm()
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
    except KeyboardInterrupt as exc:
        # An apply, rollback or maintain that began says itself what it committed (ApplyInterruptedError).
        print(f"error: {interruption(exc)}; scratch databases were dropped, nothing was applied", file=sys.stderr)
        return EXIT_ERROR
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        # A session lost where no stage said more (apply, rollback and maintain do): not a bug. What
        # reads the target changed nothing; what changes it says so itself.
        command = f"'reconcile {args[0]}'" if args and not args[0].startswith("-") else "the command"
        print(f"error: the connection to the database was lost ({redact(first_line(exc))}); {command} stopped "
              f"before its end: run it again", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug, or a library error not yet translated at its boundary
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"internal error: {type(exc).__name__}: {redact(first)}; this is a bug in reconcile {__version__}, "
              f"not a refusal; please report it with the output of the same command run with --verbose", file=sys.stderr)
        if verbose:
            print(redact(traceback.format_exc()), file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


def _raise_stop(signum, frame):
    raise StopRequested


def _stop_on_sigterm():
    """SIGTERM (a CI job cancelled, a deploy killed by its orchestrator) stops the command as Ctrl-C does:
    the statement cancelled, scratch databases dropped, and one line saying what was committed."""
    try:
        return signal.signal(signal.SIGTERM, _raise_stop)
    except ValueError:  # not the main thread (a library caller's): leave its signals alone
        return None
