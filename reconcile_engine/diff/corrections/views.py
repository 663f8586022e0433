"""Corrections for views: options (security_invoker, security_barrier, check_option) migra does not compare."""

from __future__ import annotations

from .base import Correction, DiffContext, InspectedDatabase, recreated_relations


def _options(text: str | None) -> dict:
    return dict(item.split("=", 1) for item in (text or "").split(",") if item)


class ViewOptions(Correction):
    name = "views.options"
    fixes = "migra ignores view options such as security_invoker and security_barrier, and drops them on re-creation"

    def after_migra(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> list[str]:
        before = current.snapshot.fact("view options")
        after = desired.snapshot.fact("view options")
        names = desired.snapshot.fact("qualified name")
        recreated = recreated_relations(statements)
        out = []
        for view, text in sorted(after.items()):
            wanted = _options(text)
            had = {} if view not in before or view in recreated else _options(before[view])
            changed = {k: v for k, v in wanted.items() if had.get(k) != v}
            removed = sorted(set(had) - set(wanted))
            if changed:
                out.append(f"alter view {names[view]} set ({', '.join(f'{k}={v}' for k, v in sorted(changed.items()))});")
            if removed:
                out.append(f"alter view {names[view]} reset ({', '.join(removed)});")
        return out


# This object kind's corrections, in the order they run.
CORRECTIONS = (ViewOptions(),)
