"""Corrections for row-level security: migra compares ENABLE but never FORCE."""

from __future__ import annotations

from . import Correction, Side


class ForceRowLevelSecurity(Correction):
    name = "rls.force"
    fixes = "migra ignores FORCE ROW LEVEL SECURITY, so the table owner would bypass every policy"

    def after_migra(self, statements, current: Side, desired: Side) -> list[str]:
        before = current.snapshot.fact("forced rls")
        after = desired.snapshot.fact("forced rls")
        names = desired.snapshot.fact("qualified name")
        current_names = current.snapshot.fact("qualified name")
        added = [f"alter table {names[t]} force row level security;" for t in sorted(set(after) - set(before))]
        removed = [
            f"alter table {current_names[t]} no force row level security;"
            for t in sorted(set(before) - set(after))
            if t in names  # a dropped table takes its setting with it
        ]
        return added + removed
