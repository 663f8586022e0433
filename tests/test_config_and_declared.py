"""Stage tests for config loading, declared-file loading and partition rendering (no database)."""

import datetime as dt
import re
from pathlib import Path

import pytest

from reconcile_engine.config import load_config
from reconcile_engine.declared.files import load_desired_state
from reconcile_engine.errors import ConfigError, DeclaredStateError
from reconcile_engine.declared.partition_specs import partitions_for, read_spec

REPO = Path(__file__).resolve().parent.parent


def test_shipped_config_and_defaults():
    config = load_config(REPO)
    assert config.managed_schemas == ("public",)
    assert config.timeouts.lock_timeout_ms == 5000
    assert config.timeouts.apply_lock_wait_ms == 60_000


def test_durations(tmp_path):
    (tmp_path / "reconcile.yaml").write_text(
        "timeouts:\n  lock_timeout: 500ms\n  statement_timeout: 2min\n  apply_lock_wait: 3\n"
    )
    t = load_config(tmp_path).timeouts
    assert (t.lock_timeout_ms, t.statement_timeout_ms, t.apply_lock_wait_ms) == (500, 120_000, 3000)


def test_managing_the_tool_schema_is_refused(tmp_path):
    (tmp_path / "reconcile.yaml").write_text("managed_schemas: [public, reconcile]\n")
    with pytest.raises(ConfigError, match="tool's own schema"):
        load_config(tmp_path)


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path, tmp_path / "other.yaml")


def test_shipped_partition_window_is_seven_years_plus_next():
    spec = read_spec(REPO / "partitions" / "aggregated_analytics.yaml", "partitions/aggregated_analytics.yaml")
    names = [p.name for p in partitions_for(spec, dt.date(2026, 6, 1))]
    assert names == [f"aggregated_analytics_{year}" for year in range(2020, 2028)]
    assert partitions_for(spec, dt.date(2026, 6, 1))[0].start == dt.date(2020, 1, 1)


@pytest.mark.parametrize("content, message", [
    ("table: t\n", "column: required"),
    ("table: t\ncolumn: c\nkeep: -1\n", "keep: expected a whole number"),
    ("table: t\ncolumn: c\nkeep: 0\n", "keep: at least 1"),
    ("table: t\ncolumn: c\nretention: 7\n", "unknown key 'retention'"),
    ("- t\n", "expected a mapping"),
])
def test_bad_partition_specs(tmp_path, content, message):
    path = tmp_path / "p.yaml"
    path.write_text(content)
    with pytest.raises(DeclaredStateError, match=message):
        read_spec(path, "partitions/p.yaml")


def test_load_order_and_templates(tmp_path):
    for folder in ("schema", "partitions", "views", "policies"):
        (tmp_path / folder).mkdir()
    (tmp_path / "schema" / "b.sql").write_text("-- b")
    (tmp_path / "schema" / "a.sql.j2").write_text("CREATE TABLE {{ prefix }}_t (id int);")
    (tmp_path / "policies" / "a.sql").write_text("-- p")
    (tmp_path / "views" / "a.sql").write_text("-- v")
    (tmp_path / "reconcile.yaml").write_text("vars:\n  prefix: app\n")

    desired = load_desired_state(load_config(tmp_path), dt.date(2026, 1, 1))

    assert [s.display for s in desired.sources] == ["schema/a.sql.j2", "schema/b.sql", "views/a.sql", "policies/a.sql"]
    assert desired.sources[0].sql == "CREATE TABLE app_t (id int);"


def test_undefined_template_variable(tmp_path):
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "a.sql.j2").write_text("CREATE TABLE {{ nope }} (id int);")
    with pytest.raises(DeclaredStateError, match="schema/a.sql.j2: template error: 'nope' is undefined"):
        load_desired_state(load_config(tmp_path), dt.date(2026, 1, 1))


def test_content_hash_changes_with_files_and_as_of(tmp_path):
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "a.sql").write_text("CREATE TABLE t (id int);")
    config = load_config(tmp_path)
    first = load_desired_state(config, dt.date(2026, 1, 1)).content_hash
    assert load_desired_state(config, dt.date(2026, 1, 2)).content_hash != first
    (tmp_path / "schema" / "a.sql").write_text("CREATE TABLE t (id bigint);")
    assert load_desired_state(config, dt.date(2026, 1, 1)).content_hash != first


def test_quarterly_and_monthly_windows(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("table: t\ncolumn: day\ninterval: quarterly\nkeep: 4\npremake: 1\n")
    quarters = partitions_for(read_spec(path, "q.yaml"), dt.date(2026, 1, 2))
    assert [p.name for p in quarters] == ["t_2025_q2", "t_2025_q3", "t_2025_q4", "t_2026_q1", "t_2026_q2"]
    assert (quarters[0].start, quarters[-1].end) == (dt.date(2025, 4, 1), dt.date(2026, 7, 1))

    path.write_text("table: t\ncolumn: day\ninterval: monthly\nkeep: 84\npremake: 1\nnaming: '{table}_m{year}{month:02d}'\n")
    months = partitions_for(read_spec(path, "m.yaml"), dt.date(2026, 12, 31))
    assert len(months) == 85 and months[0].name == "t_m202001" and months[-1].name == "t_m202701"


@pytest.mark.parametrize("naming", ["{table}_{decade}", "{table.__class__.__mro__}_{year}", "{year[0]}_{table}",
                                    "{0}_{year}"])
def test_bad_naming_pattern(tmp_path, naming):
    path = tmp_path / "p.yaml"
    path.write_text(f"table: t\ncolumn: day\nnaming: '{naming}'\n")
    with pytest.raises(DeclaredStateError, match=f"naming: '{re.escape(naming)}' is not a pattern"):
        read_spec(path, "partitions/p.yaml")
