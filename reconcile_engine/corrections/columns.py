"""Corrections for columns: generated expressions and defaults that call new functions."""

from __future__ import annotations

from . import Correction


class GeneratedColumns(Correction):
    name = "columns.generated"
    fixes = "migra alters a generated column's expression with SET DEFAULT, which PostgreSQL refuses"

class DefaultsAfterFunctions(Correction):
    name = "columns.defaults-after-functions"
    fixes = "migra creates tables before functions, so a default calling a new function fails"
