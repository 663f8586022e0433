"""Corrections for row-level security: FORCE, partitions, and policy role names."""

from __future__ import annotations

from ..sqltext import quote_ident
from . import Correction, InspectedDatabase, Side, dotted


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


class RowLevelSecurityOnPartitions(Correction):
    name = "rls.partitions"
    fixes = ("migra cannot enable or disable row-level security on a partition (schemainspect raises "
             "NotImplementedError): PostgreSQL can, and policies on a partition apply when it is queried directly")

    def __init__(self):
        self.statements: list[str] = []

    def before_migra(self, current: InspectedDatabase, desired: InspectedDatabase) -> bool:
        before = current.snapshot.fact("row security")
        after = desired.snapshot.fact("row security")
        names = desired.snapshot.fact("qualified name")
        for table in desired.inspected.tables.values():
            key = dotted(table.schema, table.name)
            if not table.is_partitioning_child_table:
                continue
            wanted, had = key in after, key in before
            if wanted != had:
                self.statements.append(
                    f"alter table {names[key]} {'enable' if wanted else 'disable'} row level security;")
            # migra would raise on these; we write them ourselves, after the tables exist.
            table.rowsecurity = had
        return bool(self.statements)

    def after_migra(self, statements, current: InspectedDatabase, desired: InspectedDatabase) -> list[str]:
        return list(self.statements)


class PolicyRoleNames(Correction):
    name = "rls.policy-roles"
    fixes = "migra writes a policy's roles unquoted, so a role such as \"App User\" is a syntax error"

    def before_migra(self, current: InspectedDatabase, desired: InspectedDatabase) -> bool:
        changed = False
        for side in (current, desired):
            for policy in side.inspected.rlspolicies.values():
                quoted = [role if role == "public" else quote_ident(role) for role in policy.roles]
                changed |= quoted != list(policy.roles)
                policy.roles = quoted
        return changed
