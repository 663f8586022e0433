"""Corrections for sequences and identity columns: options migra does not compare."""

from __future__ import annotations

from .base import Correction, DiffContext, InspectedDatabase


class SequenceOptions(Correction):
    name = "sequences.options"
    fixes = ("migra ignores a sequence's or identity column's options (increment, cache, min/max, start) and "
             "creates new ones without them; ALTER SEQUENCE sets them, restarting only a new sequence")

    def after_migra(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> list[str]:
        before = current.snapshot.fact("sequence")
        after = desired.snapshot.fact("sequence")
        names = desired.snapshot.fact("qualified name")
        # START WITH only says where a RESTART would go: a live sequence is never restarted, so its values
        # are kept. One the plan creates is: unused, it must start where declared (and its default
        # position, 1, may be below a declared MINVALUE, which PostgreSQL refuses).
        return [f"alter sequence {names[seq]} {_options(options)}{'' if seq in before else ' RESTART'};"
                for seq, options in sorted(after.items()) if before.get(seq) != options]


def _options(sequence: dict) -> str:
    """The ALTER SEQUENCE options that set every option the catalog holds (fact:sequence's values)."""
    return (f"AS {sequence['type']} INCREMENT BY {sequence['increment']} MINVALUE {sequence['min']} "
            f"MAXVALUE {sequence['max']} START WITH {sequence['start']} CACHE {sequence['cache']} "
            f"{'CYCLE' if sequence['cycle'] else 'NO CYCLE'}")


# This object kind's corrections, in the order they run.
CORRECTIONS = (SequenceOptions(),)
