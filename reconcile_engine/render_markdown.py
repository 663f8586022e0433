"""Stage 8 (report): plan, drift and check results as markdown for a pull request comment.

Everything shown that comes from the declared files or the database (object names, SQL, findings) is
untrusted: text is escaped so that it stays inside its table cell and never becomes HTML or a link, and
SQL sits in a fence longer than any run of backticks it holds. GitHub refuses a comment over 65,536
characters: a longer one loses the SQL first, then table rows, and says so (the plan file is the full
text); every fence and <details> it opens is closed.
"""

from __future__ import annotations

import html

from .inspection.security_drift import SECURITY
from .planning import planfile
from .results import CheckReport, DriftReport, PlanResult

COMMENT_LIMIT = 65_536  # characters in a GitHub issue or pull request comment
# Room left for the note saying what was cut, counted before the cut is made.
_NOTE_ROOM = 400

_MARKDOWN_PUNCTUATION = "\\`*_[]|#~!"


def escape(text) -> str:
    """Untrusted text as inline markdown that renders literally: one line, no HTML, no emphasis, no link,
    no column break in a table."""
    flat = " ".join(str(text).split())  # newlines (and tabs) would end a table row
    escaped = html.escape(flat, quote=False)  # < > & as entities: no tag, no entity of the text's own
    return "".join(f"\\{c}" if c in _MARKDOWN_PUNCTUATION else c for c in escaped)


def _row(*cells) -> str:
    return "| " + " | ".join(escape(c) if c not in (None, "") else "" for c in cells) + " |"


def _table(header: tuple[str, ...], rows: list[str]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header), *rows] if rows else []


def _fenced_sql(sql: str) -> list[str]:
    """A ```sql block that no backticks in the SQL can close early."""
    longest, run = 0, 0
    for c in sql:
        run = run + 1 if c == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [fence + "sql", sql, fence]


def _collapsed_sql(title: str, sql: str) -> list[str]:
    return ["", f"<details><summary>{html.escape(title, quote=False)}</summary>", "", *_fenced_sql(sql), "", "</details>"]


def _bullets(title: str, lines) -> list[str]:
    return ["", f"**{title}**", "", *(f"- {escape(line)}" for line in lines)] if lines else []


def _cut_sql(sql: str, room: int) -> str:
    """The SQL's first lines within `room` characters."""
    kept = sql[:max(room, 0)]
    return kept[:kept.rfind("\n")] if "\n" in kept else ""


def _fit(compose, rows: list[str], sql: str, sql_title: str, whole: str) -> str:
    """compose(rows, sql_lines, note) is the comment; cut the SQL, then the rows, until it fits."""
    full = compose(rows, _collapsed_sql(sql_title, sql) if sql else [], None)
    if len(full) <= COMMENT_LIMIT:
        return full
    without_sql = compose(rows, [], "")
    room = COMMENT_LIMIT - len(without_sql) - len(_collapsed_sql(sql_title, "")) - 2 * _NOTE_ROOM
    if sql and room > 2_000:
        kept = _cut_sql(sql, room)
        note = (f"The SQL is cut after {kept.count(chr(10)) + 1} of {sql.count(chr(10)) + 1} lines to fit a "
                f"comment; {whole} holds it in full.")
        return compose(rows, _collapsed_sql(sql_title + " (cut)", kept), note)
    def rows_cut(kept: int) -> str:
        return compose(rows[:kept], [], f"The SQL is left out and only {kept} of {len(rows)} table rows are "
                                        f"shown, to fit a comment; {whole} holds everything.")

    fits, too_many = 0, len(rows)  # the most rows that fit, by halving
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        fits, too_many = (middle, too_many) if len(rows_cut(middle)) <= COMMENT_LIMIT else (fits, middle)
    return rows_cut(fits)[:COMMENT_LIMIT]  # only a pathological heading needs the slice


def _note(note: str | None) -> list[str]:
    return ["", f"> **Note:** {note}"] if note else []


def _without_row_note(text: str, rows: int | None) -> str:
    """The summary without the ' (N rows)' that Plan.with_row_counts appends: rows have their own column."""
    note = f" ({rows} row{'s' if rows != 1 else ''})"
    return text[:-len(note)] if rows is not None and text.endswith(note) else text


def _object_and_change(statement) -> tuple[str, str]:
    """'alter table public.users: drop column x' -> ('table public.users', 'drop column x');
    'create index i on public.users' -> ('index i on public.users', 'create')."""
    summary = _without_row_note(statement.summary, statement.rows)
    head, colon, rest = summary.partition(": ")
    if colon and head.startswith("alter "):
        return head.removeprefix("alter "), rest
    verb, _, what = summary.partition(" ")
    return what, verb + (" (hand-written data step)" if statement.data_step else "")


PLAN_COLUMNS = ("#", "object", "change", "hazards", "destructive", "lock taken", "estimated rows")


def plan(result: PlanResult, *, project_dir=None, written: str = "wrote") -> str:
    heading = f"### reconcile plan for {escape(result.target)}"
    if result.plan is None:
        verdict = ("No changes: the target matches the declared files (it changed since the last apply; drift is "
                   "reconciled)." if result.changed_since_last_apply else "No changes: the target matches the declared state.")
        ignored = [f"Not compared (ignore: in reconcile.yaml): objects matching {escape(', '.join(result.ignore))}."]
        return "\n".join([heading, "", verdict, *(ignored if result.ignore else [])])
    the_plan = result.plan
    where = result.file.relative_to(project_dir) if result.file and project_dir else result.file
    destructive = the_plan.destructive
    verdict = (f"**{len(the_plan.statements)} statement(s)**, rehearsed on a copy of the target: converged."
               + (f" **{len(destructive)} destructive**: approval needed ('-- destructive-approved: yes' in the plan "
                  f"file, or apply --allow-destructive)." if destructive and not the_plan.destructive_approved else "")
               + (f" {len(destructive)} destructive, approved." if destructive and the_plan.destructive_approved else ""))
    if result.rollback_file:
        shown = result.rollback_file.relative_to(project_dir) if project_dir else result.rollback_file
        rollback = f"Rollback: {escape(shown)} (rehearsed: leads back exactly)."
    else:  # a dry run, or none: the header's note says where it would be, or why there is none
        rollback = f"Rollback: {escape(the_plan.rollback_note)}."
    head = [heading, "", verdict, "",
            f"{'Rewritten' if written == 'rewrote' else 'Written'}: {escape(where)}" if where else "Not written (dry run).",
            "", rollback]
    rows = []
    for number, statement in enumerate(the_plan.statements, 1):
        obj, change = _object_and_change(statement)
        destroys = _without_row_note(statement.destructive, statement.rows) if statement.destructive else ""
        rows.append(_row(number, obj, change, "; ".join(statement.hazards), destroys, statement.lock,
                         statement.rows))
    squawk = [(number, f"statement {number}: {finding}") for number, s in enumerate(the_plan.statements, 1)
              for finding in s.lint]
    preflight = [outcome.text for outcome in the_plan.preflight]

    def compose(shown_rows, sql_lines, note):
        shown = len(shown_rows)
        return "\n".join([*head, "", *_table(PLAN_COLUMNS, shown_rows),
                          *_bullets(f"Squawk: {len(squawk)} finding(s)", [line for number, line in squawk if number <= shown]),
                          *_bullets(f"Security lint on the declared state: {len(result.lint_warnings)} finding(s)",
                                    result.lint_warnings[:shown]),
                          *_bullets("Pre-flight checks on the target's rows", preflight[:shown]),
                          *_note(note), *sql_lines])

    return _fit(compose, rows, planfile.render(the_plan).rstrip(),
                f"The plan file ({len(the_plan.statements)} statements)", "the plan file")


DRIFT_COLUMNS = ("#", "kind", "object", "severity", "difference")


def drift(report: DriftReport, **_context) -> str:
    target = escape(report.target)
    if report.in_sync:
        lines = [f"### In sync: {target} matches the declared state (as of {report.as_of})."]
        if report.changed_outside_reconcile:
            lines += ["", "Changed since the last apply; matches the declared files: reconciled."]
        if report.ignore:
            lines += ["", f"Not compared (ignore: in reconcile.yaml): objects matching {escape(', '.join(report.ignore))}."]
        return "\n".join(lines)
    security = [d.description for d in report.differences if d.severity == SECURITY]
    # Weakened tenant isolation comes first, right under the heading: it is what pages someone.
    head = [f"### Drift: {target} does not match the declared state (as of {report.as_of}).",
            *([""] if security else []), *(f"- **SECURITY**: {escape(line)}" for line in security)]
    if report.changed_outside_reconcile:
        head += ["", "Changed outside reconcile since the last apply."]
    rows = [_row(number, d.kind, d.key, d.severity, d.description) for number, d in enumerate(report.differences, 1)]
    explained = " (they account for every difference)" if report.pending_plans_explain_differences else ""
    tail = [*_bullets("Partitions missing ('reconcile maintain' creates the current and upcoming ones)",
                      report.missing_partitions),
            *_bullets("Rows in a DEFAULT partition that a declared partition should hold", report.stranded_rows),
            *_bullets(f"Reviewed plans not yet applied{explained}", report.pending_plans),
            *_bullets("Applies that began and did not finish", report.unfinished_applies),
            "", f"Not compared: {escape('; '.join(report.not_compared))}."]

    def compose(shown_rows, sql_lines, note):
        table = ["", f"**Differences (target vs declared): {len(rows)}**", "",
                 *_table(DRIFT_COLUMNS, shown_rows)] if rows else []
        return "\n".join([*head, *table, *tail, *_note(note), *sql_lines])

    fix = ";\n\n".join(sql.rstrip().rstrip(";") for sql in report.fix_sql) + ";" if report.fix_sql else ""
    return _fit(compose, rows, fix, "SQL that would bring the target to the declared state (unrehearsed: run "
                "'reconcile plan' for a reviewed plan)", "'reconcile drift --format json'")


CHECK_COLUMNS = ("#", "kind", "subject", "message")


def check(report: CheckReport, **_context) -> str:
    start = f"from baseline {escape(report.baseline)}" if report.baseline else "from an empty database"
    replayed = (f"{len(report.plans_replayed)} plan(s), {report.statements_replayed} statement(s), replayed "
                f"{start}")
    if report.ok:
        return "\n".join(["### reconcile check: passed", "", f"{replayed}: they reach the declared state."])
    rows = [_row(number, f.kind, f.subject, f.message) for number, f in enumerate(report.failures, 1)]

    def compose(shown_rows, sql_lines, note):
        return "\n".join(["### reconcile check: failed", "", f"{replayed}: **{len(rows)} failure(s)**.", "",
                          *_table(CHECK_COLUMNS, shown_rows), *_note(note), *sql_lines])

    return _fit(compose, rows, "", "", "'reconcile check --format json'")
