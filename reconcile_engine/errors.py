"""Typed, user-facing errors: raised where the fault is known, printed as one line by the CLI."""

# Exit codes a CI job can branch on. Usage errors are errors (1): they never collide with 2.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
# A bug in reconcile (or a library error not translated where it arose): never a refusal, never a
# verdict; the message asks for a report.
EXIT_INTERNAL = 3


class ReconcileError(Exception):
    """Base of every error the user sees. Its message is one line that says what to do.

    `details` are extra lines (e.g. what a rehearsal left undone) printed before that line.
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = list(details or [])


class UsageError(ReconcileError):
    """The command line itself is wrong."""


class ConfigError(ReconcileError):
    """reconcile.yaml is missing, malformed, or has an unknown key or a wrong type."""


class ProjectExistsError(ReconcileError):
    """init was asked to write a project where one (or part of one) already exists."""


class DeclaredStateError(ReconcileError):
    """A declared file is missing, unreadable, or fails to render or load."""


class PlanRefusedError(ReconcileError):
    """A change the declared files ask for that reconcile cannot plan safely (the reason is given);
    nothing was planned."""


class RefusedStatementError(ReconcileError):
    """A declared file holds a statement that is not a definition (it would run, read or change
    something outside the scratch space); refused before anything runs."""


class DatabaseError(ReconcileError):
    """The database could not be reached, or refused what was asked of it."""


class ServerInUseError(DatabaseError):
    """Commands held the embedded server for longer than a stop waits: nothing was stopped."""

    def __init__(self, data_dir, holders: tuple[str, ...], wait_s: float):
        named = "; ".join(holders) or "a command of another user or a library caller's process"
        super().__init__(f"the embedded PostgreSQL server in {data_dir} is in use ({named}) and was still after "
                         f"{wait_s:.0f} s: stopped nothing; run 'reconcile server stop' again once it ends")


class ScratchError(ReconcileError):
    """A scratch database could not be created or used."""


class PlanNotConvergedError(ReconcileError):
    """Rehearsal showed that the plan would not reach the declared state."""


class PreflightFailedError(ReconcileError):
    """A pre-flight check counted rows on the target that would make a statement of the plan fail
    (a NULL under a new NOT NULL, a duplicate under a new unique key...); the plan was not written."""


class PlanFileError(ReconcileError):
    """A plan file under migrations/ is malformed."""


class PlanModifiedError(ReconcileError):
    """A plan file's statements are not the ones its rehearsal proved (edited since, or never rehearsed)."""


class PendingPlansError(ReconcileError):
    """A new plan was asked for while reviewed plans are still waiting to be applied."""


class StalePlanError(ReconcileError):
    """The target changed since the plan was made: its fingerprint is not the plan's 'before'."""


class NothingToRollBackError(ReconcileError):
    """A rollback was asked for, but the last change has no rehearsed reverse that starts where it ended."""


class LintError(ReconcileError):
    """squawk could not be run."""


class DestructiveNotApprovedError(ReconcileError):
    """A plan with destructive statements was applied without approval."""


class ApplyFailedError(ReconcileError):
    """A statement of a plan failed; the transaction was rolled back."""


class LockTimeoutError(ReconcileError):
    """Another apply held the advisory lock for longer than the configured wait."""


class ApplyInterruptedError(ReconcileError):
    """An apply stopped before its end (Ctrl-C, SIGTERM, the connection to the target lost): the
    message says which of the plan's steps are committed and which command continues."""


class NothingToRepairError(ReconcileError):
    """repair was asked for, but no apply began and stopped (or several did and none was named)."""


class HistoryUnavailableError(ReconcileError):
    """reconcile's own tables on the target (history, progress, data steps) could not be read or
    written: locked by another session past lock_timeout, or not granted to the role. The remedy
    (statements to run, a session to end) comes last in the message, so that it can be copied."""

    def __init__(self, problem: str, remedy: str, details: list[str] | None = None):
        super().__init__(f"{problem}; to fix: {remedy}", details)
        self.problem, self.remedy = problem, remedy

    def after(self, prefix: str, outcome: str) -> "HistoryUnavailableError":
        """The same, with what the command that stopped left (before the remedy)."""
        return HistoryUnavailableError(f"{prefix}{self.problem}; {outcome}", self.remedy, self.details)


class StopRequested(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so that what cleans up after Ctrl-C cleans up after it too."""


def interruption(exc: KeyboardInterrupt) -> str:
    """Which signal stopped a command, as its one line says it."""
    return "stopped by SIGTERM" if isinstance(exc, StopRequested) else "interrupted (SIGINT, Ctrl-C)"


class PullConflictError(ReconcileError):
    """pull would overwrite or leave beside its files declared files that hold something else (or
    write through a link); nothing was changed."""


class BaselineError(ReconcileError):
    """A baseline was not written: the committed plans do not replay, or the state they reach is not
    the declared state the baseline would build."""
