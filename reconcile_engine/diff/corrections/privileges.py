"""Grants, when privileges are managed (privileges: true): written from our own snapshot.

migra's privilege diff covers table grants only, and not a function's default EXECUTE to PUBLIC nor the
privileges an owner revoked from itself, so it is left off and every grant is compared here: revoked
first (on objects that exist before the plan), granted last (on objects that exist after it), all in
the plan's one transaction. The same two lists (revokes, grants) give the rehearsal copy the target's.
"""

from __future__ import annotations

from ...sqltext import quote_part
from ..statement_facts import operation
from .base import DiffContext, Correction, InspectedDatabase


# The snapshot's grantee for the owner's own privileges (snapshot rows '<object> TO OWNER'): whoever owns
# the object. A plan's objects are owned by the role that applies it, which the statements name so.
OWNER = "OWNER"


def _role(grantee: str) -> str:
    return "CURRENT_USER" if grantee == OWNER else grantee


def _split(key: str) -> tuple[str, str]:
    """'TABLE public.t TO "App User"' -> ('TABLE public.t', '"App User"')"""
    target, _, grantee = key.rpartition(" TO ")
    return target, grantee


def _changed(before: dict, after: dict) -> set:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


def revokes(before: dict, after: dict) -> list[str]:
    """What goes first: every changed grant of an object that exists before (snapshot 'grant' objects:
    '<object> TO <grantee>' -> privileges), revoked (the owner's own are redone after, in grants)."""
    return [f"revoke all on {target} from {_role(grantee)};"
            for target, grantee in (_split(key) for key in sorted(k for k in _changed(before, after) if k in before))
            if grantee != OWNER]


def grants(before: dict, after: dict) -> list[str]:
    """What goes last: every changed grant as it must be after."""
    out = []
    for key in sorted(_changed(before, after)):
        target, grantee = _split(key)
        if key not in after and grantee != OWNER:
            continue
        if grantee == OWNER:  # also on what the plan creates, whose owner has them all until then
            out.append(f"revoke all on {target} from {_role(grantee)};")
        # The owner's row is there only when it lacks privileges: without it, it has them all.
        privileges = [p.strip() for p in after.get(key, "ALL").split(",") if p.strip()]
        plain = [p for p in privileges if not p.endswith(" WITH GRANT OPTION")]
        with_option = [p.removesuffix(" WITH GRANT OPTION") for p in privileges if p.endswith(" WITH GRANT OPTION")]
        if plain:
            out.append(f"grant {', '.join(plain)} on {target} to {_role(grantee)};")
        if with_option:
            out.append(f"grant {', '.join(with_option)} on {target} to {_role(grantee)} with grant option;")
    return out


class Grants(Correction):
    name = "privileges.grants"
    fixes = "migra compares only table grants, and not a function's default EXECUTE to PUBLIC"

    def before_migra(self, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext):
        """Revoking what changes comes first (before migra's statements); granting, last."""
        if not desired.scope.privileges:
            return False
        return [operation(sql, self.name)
                for sql in revokes(current.snapshot.of_kind("grant"), desired.snapshot.of_kind("grant"))]

    def after_migra(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> list[str]:
        if not desired.scope.privileges:
            return []
        after = desired.snapshot.of_kind("grant")
        # A function the plan creates gets EXECUTE for PUBLIC by default: revoked when not declared.
        return [f"revoke all on {target} from PUBLIC;" for target in _new_functions(current, desired)
                if f"{target} TO PUBLIC" not in after] + grants(current.snapshot.of_kind("grant"), after)


def _new_functions(current: InspectedDatabase, desired: InspectedDatabase) -> list[str]:
    """'FUNCTION schema.name(args)' (as grants name them) of each function the plan creates."""
    before = {k for kind in ("function", "procedure") for k in current.snapshot.of_kind(kind)}
    out = []
    for kind in ("function", "procedure"):
        for key in sorted(desired.snapshot.of_kind(kind)):
            if key in before:
                continue
            name, _, arguments = key.partition("(")
            schema, _, function = name.partition(".")
            out.append(f"FUNCTION {quote_part(schema)}.{quote_part(function)}({arguments}")
    return out


# This object kind's corrections, in the order they run.
CORRECTIONS = (Grants(),)
