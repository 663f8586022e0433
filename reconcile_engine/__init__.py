"""reconcile: declarative schema-as-code for PostgreSQL.

The pipeline, one module per stage:
  config -> declared (+ admission: definitions only) -> scratch (+ buildrole, inert) -> inspection
  -> diff (+ corrections) -> plan -> rehearse -> planfile (sealed) -> apply (+ history);
  proof runs scratch to rehearse for one plan; drift reuses the first stages.
"""

__version__ = "0.1.0"
