"""Security lint over the declared state (built in the scratch database): RLS holes no diff notices.

Each rule is a catalog query over the managed schemas returning (object, message). A rule can be
switched off for one object in reconcile.yaml, with a reason:

    lint:
      ignore:
        - {rule: missing-primary-key, object: public.audit_log, reason: append-only, keyed by time}
"""

from __future__ import annotations

import dataclasses
import functools


@dataclasses.dataclass(frozen=True)
class RuleFinding:
    rule: str
    object: str
    message: str

    def describe(self) -> str:
        return f"{self.rule}: {self.object}: {self.message}"


_RULES = {
    "tenant-table-without-rls": """
        SELECT n.nspname || '.' || c.relname,
               'has ' || tenant.attname || CASE
                   WHEN NOT c.relrowsecurity THEN ' but row-level security is not enabled'
                   WHEN NOT c.relforcerowsecurity THEN ' but row-level security is not forced'
                   ELSE ' and row-level security but no policy (it sees nothing)' END
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN LATERAL (SELECT min(quote_ident(a.attname)) AS attname FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attname = ANY(%(tenant_columns)s)
                              AND NOT a.attisdropped) tenant
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND tenant.attname IS NOT NULL
          AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity
               OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))
    """,
    "view-bypasses-rls": """
        SELECT DISTINCT n.nspname || '.' || v.relname,
               'reads ' || tn.nspname || '.' || t.relname || ', which has row-level security, without '
               || 'security_invoker = true: it sees every row as its owner'
        FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
        JOIN pg_rewrite r ON r.ev_class = v.oid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
        JOIN pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid AND t.relrowsecurity
        JOIN pg_namespace tn ON tn.oid = t.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND v.relkind = 'v'
          AND NOT coalesce('security_invoker=true' = ANY(v.reloptions) OR 'security_invoker=on' = ANY(v.reloptions), false)
    """,
    "matview-exposes-rls-table": """
        SELECT DISTINCT n.nspname || '.' || v.relname,
               'reads ' || tn.nspname || '.' || t.relname || ', which has row-level security, and '
               || CASE WHEN a.grantee = 0 THEN 'every role' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
               || ' may select from it: a materialized view is not protected by row-level security, so that '
               || 'reads every tenant''s rows (revoke it, or serve the rows through a security_invoker view)'
        FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
        JOIN pg_rewrite r ON r.ev_class = v.oid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
        JOIN pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid AND t.relrowsecurity
        JOIN pg_namespace tn ON tn.oid = t.relnamespace
        CROSS JOIN LATERAL aclexplode(v.relacl) a
        WHERE n.nspname = ANY(%(schemas)s) AND v.relkind = 'm'
          AND a.privilege_type = 'SELECT' AND a.grantee <> v.relowner
    """,
    "security-definer-without-search-path": """
        SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               'is SECURITY DEFINER without a fixed search_path (SET search_path = ...), so a caller can '
               || 'make it run their own functions with its owner''s rights'
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%(schemas)s) AND p.prosecdef
          AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%%')
    """,
    "missing-primary-key": """
        SELECT n.nspname || '.' || c.relname, 'has no primary key'
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
    """,
}


def _current_setting_calls_without_missing_ok(expression: str) -> int:
    """How many current_setting() calls in the expression lack missing_ok, read from its parse tree."""
    from pglast import parse_sql  # loaded by the lint, not by what imports RuleFinding

    calls = _current_setting_visitor()()
    calls(parse_sql(f"SELECT {expression}"))
    return calls.without_missing_ok


@functools.cache
def _current_setting_visitor() -> type:
    from pglast.visitors import Visitor

    class CurrentSettingCalls(Visitor):
        def __init__(self):
            super().__init__()
            self.without_missing_ok = 0

        def visit_FuncCall(self, ancestors, node):
            name = ".".join(n.sval for n in node.funcname)
            if name in ("current_setting", "pg_catalog.current_setting") and len(node.args or ()) < 2:
                self.without_missing_ok += 1

    return CurrentSettingCalls


def _policies_without_missing_ok(cur, schemas) -> list[RuleFinding]:
    """current_setting('x') raises when x is unset: the policy then errors instead of seeing nothing."""
    cur.execute(
        """SELECT n.nspname || '.' || c.relname || '.' || p.polname,
                  concat_ws(' AND ', pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
           FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = ANY(%(schemas)s)""",
        {"schemas": list(schemas)},
    )
    found = []
    for name, expression in cur.fetchall():
        if _current_setting_calls_without_missing_ok(expression or "true"):
            found.append(RuleFinding("current-setting-without-missing-ok", name,
                                     "calls current_setting() without missing_ok = true: with the setting "
                                     "unset, every query errors instead of seeing nothing"))
    return found


RULE_NAMES = tuple(_RULES) + ("current-setting-without-missing-ok",)


def check(cur, schemas, ignored: dict, tenant_columns=("organization_id",)) -> list[RuleFinding]:
    """Findings for the declared state in the database behind `cur`; `ignored` maps (rule, object) to a
    reason; `tenant_columns` are the columns that mark a tenant's rows (lint.tenant_columns)."""
    findings = []
    for rule, query in _RULES.items():
        cur.execute(query, {"schemas": list(schemas), "tenant_columns": list(tenant_columns)})
        findings += [RuleFinding(rule, obj, message) for obj, message in cur.fetchall()]
    findings += _policies_without_missing_ok(cur, schemas)
    return sorted((f for f in findings if (f.rule, f.object) not in ignored), key=lambda f: (f.object, f.rule))
