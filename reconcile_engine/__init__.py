"""reconcile: declarative schema-as-code for PostgreSQL, as a library.

The public API (api.py), one function per command, each returning a typed result (results.py):
init, load_project, pull, plan, rehearse, apply, rollback, repair, drift, maintain, lint, policy_tests, status,
check;
errors
are the ReconcileError family (errors.py). The pipeline, one subpackage per stage:
  declared (files -> desired SQL) -> scratch (build it) -> inspection -> diff (migra + corrections)
  -> planning (plan, hazards, online steps, plan file) -> rehearsal -> deploy (apply, rollback, history);
runner executes statements for rehearsal and deploy; lifecycle keeps partitions; checks holds the
security lint, squawk and policy tests; adoption writes the declared files from a live database
(pull); cli and render are the command line.
"""

from .api import (
    Project, apply, check, drift, init, lint, load_project, maintain, plan, policy_tests, pull, rehearse, repair, rollback,
    status,
)
from .errors import ReconcileError
from .version import __version__

__all__ = [
    "Project", "ReconcileError", "__version__", "apply", "check", "drift", "init", "lint", "load_project", "maintain", "plan",
    "policy_tests", "pull", "rehearse", "repair", "rollback", "status",
]
