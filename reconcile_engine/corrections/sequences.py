"""Corrections for sequences and identity columns: options migra does not compare."""

from __future__ import annotations

from . import Correction


class SequenceOptions(Correction):
    name = "sequences.options"
    fixes = "migra ignores changed sequence and identity options (increment, cache, min/max)"
