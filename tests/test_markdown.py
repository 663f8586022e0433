"""Markdown for a pull request comment (plan, drift, check): it parses as the table and blocks it
claims to be, untrusted names stay inside their cells, and it fits GitHub's 65,536 characters."""

import datetime as dt
import re
from pathlib import Path

from markdown_it import MarkdownIt

from reconcile_engine import render, render_markdown
from reconcile_engine.planning.build import Plan, PlannedStatement
from reconcile_engine.results import CheckFailure, CheckReport, PlanResult

GOLDEN = Path(__file__).parent / "golden" / "plan_comment.md"
HOSTILE_TABLE = "x|<img src=x onerror=alert(1)>"


def to_html(text: str) -> str:
    # GitHub's flavour as far as it matters here: CommonMark (raw HTML allowed, as GitHub's <details>
    # needs) plus tables.
    return MarkdownIt("commonmark").enable("table").render(text)


def assert_blocks_closed(html: str) -> None:
    assert html.count('<pre><code class="language-sql">') == html.count("</code></pre>")
    assert html.count("<details>") == html.count("</details>")


def table_rows(html: str) -> list[str]:
    [body] = re.findall(r"<tbody>(.*?)</tbody>", html, re.S)
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def normalized(text: str) -> str:
    """What varies between runs and servers: the target's name (as the heading shows it), the plan's
    time, its as-of date and the fingerprints and checksums made from them."""
    target = text.splitlines()[0].removeprefix("### reconcile plan for ")
    text = text.replace(target, "TARGET")
    text = re.sub(r"-- created: \S+", "-- created: TIME", text)
    text = re.sub(r"-- as-of: \S+", "-- as-of: DATE", text)
    return re.sub(r"sha256:[0-9a-f]{64}", "sha256:HASH", text)


def test_a_plan_comment_shows_destruction_hazards_and_squawk_and_parses(cli, project, target_url, sql):
    assert cli("plan", "--name", "first")[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO organizations (id, name) VALUES ('o1', 'one'); "
                    "INSERT INTO users (email, organization_id) VALUES ('a@example.com', 'o1')")
    users = project / "schema" / "020_users.sql"
    users.write_text(users.read_text().replace("created_at       timestamptz NOT NULL DEFAULT now()",
                                               "nickname         text NOT NULL DEFAULT 'x'"))
    organizations = project / "schema" / "010_organizations.sql"
    organizations.write_text(organizations.read_text().replace("created_at  timestamptz", "created_at  date"))
    (project / "schema" / "090_hostile.sql").write_text(f'CREATE TABLE "{HOSTILE_TABLE}" (id int);\n')

    code, out, _ = cli("plan", "--dry-run", "--format", "markdown")

    assert code == 0
    assert normalized(out) == GOLDEN.read_text()
    html = to_html(out)
    assert_blocks_closed(html)
    assert html.count("<table>") == 1 and len(table_rows(html)) == 4
    assert all(row.count("<td>") == 7 for row in table_rows(html))  # the hostile name broke no row
    hostile_row = table_rows(html)[0]
    assert "x|&lt;img src=x onerror=alert(1)&gt;" in hostile_row and "<img" not in html


def planned(number: int, summary_width: int = 40, sql_width: int = 300) -> PlannedStatement:
    return PlannedStatement(f"alter table public.t{number} add column c{'x' * sql_width} int",
                            f"alter table public.t{number}: add column {'c' * summary_width}", "migra", facts=None,
                            hazards=("takes an ACCESS EXCLUSIVE lock (blocks reads and writes)",))


def big_plan(statements: int, **widths) -> PlanResult:
    plan = Plan(tuple(planned(n, **widths) for n in range(1, statements + 1)), dt.date(2026, 11, 27),
                "sha256:" + "0" * 64, "sha256:" + "1" * 64, dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc))
    return PlanResult(target="deploy@db:5432/app", plan=plan)


def test_a_plan_over_a_comments_limit_loses_its_sql_then_rows_and_says_so():
    sql_cut = render.render(big_plan(150, sql_width=600), "markdown")
    rows_cut = render.render(big_plan(1200, summary_width=400), "markdown")

    assert len(sql_cut) <= render_markdown.COMMENT_LIMIT and len(rows_cut) <= render_markdown.COMMENT_LIMIT
    assert "The SQL is cut after " in sql_cut and "the plan file holds it in full" in sql_cut
    html = to_html(sql_cut)
    assert_blocks_closed(html)
    assert len(table_rows(html)) == 150
    assert html.count('<pre><code class="language-sql">') == 1
    kept = int(re.search(r"only (\d+) of 1200 table rows are shown", rows_cut).group(1))
    html = to_html(rows_cut)
    assert_blocks_closed(html)
    assert "language-sql" not in html
    assert 0 < kept < 1200 and len(table_rows(html)) == kept


def test_a_check_comment_gives_the_verdict_and_a_table_of_failures():
    failure = CheckFailure("checksum", "migrations/20261127_a`b|c.sql", "edited since its rehearsal\n<b>run</b> "
                           "'reconcile rehearse'")
    report = CheckReport(("20261127_a.sql",), None, 3, (failure,))

    text = render.render(report, "markdown")
    passed = render.render(CheckReport(("20261127_a.sql",), "baseline.sql", 3, ()), "markdown")

    assert text.startswith("### reconcile check: failed") and "**1 failure(s)**" in text
    [row] = table_rows(to_html(text))
    assert row.count("<td>") == 4 and "a`b|c.sql" in row and "&lt;b&gt;run&lt;/b&gt;" in row
    assert passed.startswith("### reconcile check: passed") and "from baseline baseline.sql" in passed
