"""drift --format prometheus: gauges a node-exporter textfile collector reads, valid exposition text."""

from prometheus_client.parser import text_string_to_metric_families

from reconcile_engine import render
from test_markdown import assert_blocks_closed, table_rows, to_html
from reconcile_engine.results import DriftReport


def samples(text: str) -> dict:
    """(metric name, sorted labels without target) -> value, and every sample's target label."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        for s in family.samples:
            found[(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "target")))] = s.value
    return found


def test_drift_as_prometheus_gauges_in_sync_then_drifted(cli, target_url, sql):
    assert cli("plan", "--name", "first")[0] == 0
    code, out, err = cli("apply", "--format", "prometheus")
    assert code == 1 and out == "" and "--format prometheus is for drift only, not apply" in err
    assert cli("status", "--format", "json")[1].count("_first.sql") == 1  # still pending: nothing applied
    assert sql(target_url, "SELECT to_regclass('public.organizations')")[0][0] is None
    assert cli("apply")[0] == 0

    code, out, _ = cli("drift", "--format", "prometheus")

    assert code == 0
    in_sync = samples(out)
    assert in_sync[("reconcile_drift_in_sync", ())] == 1 and in_sync[("reconcile_drift_security", ())] == 0
    assert in_sync[("reconcile_pending_plans", ())] == 0 and in_sync[("reconcile_missing_partitions", ())] == 0
    assert 0 <= in_sync[("reconcile_last_apply_age_seconds", ())] < 600
    assert not [key for key in in_sync if key[0] == "reconcile_drift_objects"]

    sql(target_url, "DROP POLICY org_isolation ON users; CREATE INDEX by_name ON organizations (name)")
    code, out, _ = cli("drift", "--format", "prometheus")

    assert code == 2
    drifted = samples(out)
    assert drifted[("reconcile_drift_in_sync", ())] == 0 and drifted[("reconcile_drift_security", ())] == 1
    assert drifted[("reconcile_drift_objects", (("kind", "policy"),))] == 1
    assert drifted[("reconcile_drift_objects", (("kind", "index"),))] == 1

    code, out, _ = cli("drift", "--format", "markdown")  # the same drift, for a pull request comment
    assert code == 2 and out.index("- **SECURITY**: ") < out.index("| # | kind | object | severity | difference |")
    html = to_html(out)
    assert_blocks_closed(html)
    assert len(table_rows(html)) == 2 and "<td>policy</td>" in html and "<td>index</td>" in html


def test_a_hostile_target_name_stays_inside_its_label():
    name = 'evil"} reconcile_drift_in_sync 1\n# x \\'
    report = DriftReport(target=name, as_of="2026-11-27", fingerprint="", declared_fingerprint="",
                         declared_state="built", last_applied_fingerprint=None, changed_outside_reconcile=False,
                         pending_plans=(), pending_plans_explain_differences=False, missing_partitions=(),
                         stranded_rows=(), differences=(), fix_sql=(), not_compared=(), lint_warnings=())

    text = render.render(report, "prometheus")

    families = list(text_string_to_metric_families(text))
    assert [s.labels for f in families for s in f.samples] == [{"target": name}] * 6  # no drift by kind, no age: never applied
    assert [s.value for f in families for s in f.samples if s.name == "reconcile_drift_in_sync"] == [1]
