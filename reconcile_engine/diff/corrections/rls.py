"""Corrections for row-level security: FORCE, partitions, and policy role names."""

from __future__ import annotations

from ...sqltext import quote_ident
from .base import Correction, DiffContext, InspectedDatabase, Side, dotted


class ForceRowLevelSecurity(Correction):
    name = "rls.force"
    fixes = "migra ignores FORCE ROW LEVEL SECURITY, so the table owner would bypass every policy"

    def after_migra(self, statements, current: Side, desired: Side, context: DiffContext) -> list[str]:
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

    def before_migra(self, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> bool:
        before = current.snapshot.fact("row security")
        changed = False
        for table in desired.inspected.tables.values():
            if table.is_partitioning_child_table:
                had = dotted(table.schema, table.name) in before
                changed |= table.rowsecurity != had
                # migra would raise on these; after_migra writes them, after the tables exist.
                table.rowsecurity = had
        return changed

    def after_migra(self, statements, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> list[str]:
        before = current.snapshot.fact("row security")
        after = desired.snapshot.fact("row security")
        names = desired.snapshot.fact("qualified name")
        return [f"alter table {names[key]} {'enable' if key in after else 'disable'} row level security;"
                for key in sorted(desired.snapshot.fact("partition parent")) if (key in after) != (key in before)]


class PolicyRoleNames(Correction):
    name = "rls.policy-roles"
    fixes = "migra writes a policy's roles unquoted, so a role such as \"App User\" is a syntax error"

    def before_migra(self, current: InspectedDatabase, desired: InspectedDatabase, context: DiffContext) -> bool:
        changed = False
        for side in (current, desired):
            for policy in side.inspected.rlspolicies.values():
                quoted = [role if role == "public" else quote_ident(role) for role in policy.roles]
                changed |= quoted != list(policy.roles)
                policy.roles = quoted
        return changed


# This object kind's corrections, in the order they run.
CORRECTIONS = (PolicyRoleNames(), RowLevelSecurityOnPartitions(), ForceRowLevelSecurity())
