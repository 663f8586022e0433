"""reconcile: declarative schema-as-code for PostgreSQL.

The pipeline, one module per stage:
  config -> declared -> scratch -> inspection -> diff (+ corrections) -> plan
  -> rehearse -> planfile -> apply (+ history); drift reuses the first stages.
"""

__version__ = "0.1.0"
