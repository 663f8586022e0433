"""Corrections for enum types: migra re-creates an enum to add a value."""

from __future__ import annotations

from . import Correction


class EnumValues(Correction):
    name = "enums.add-value"
    fixes = "migra drops and re-creates an enum type to add a value, which fails while columns use it"
