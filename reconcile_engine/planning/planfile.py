"""Stage 7: the plan file under migrations/ — rendering a Plan to reviewed SQL, and reading it back.

A plan file is sealed when its rehearsal passes: its header carries a checksum of what apply would
run (each statement, its commit and online-step marks, its line in the summary) and of the
fingerprints and as-of date; each statement carries its own digest, so that a change is named.
The seal is not a signature (whoever edits a file can recompute it): it makes every change to what
runs go through 'reconcile rehearse', which proves the edited plan and rewrites its header, so that
the summary a reviewer reads is always the statements' own. Only '-- destructive-approved:' is left
for the reviewer to change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING


from ..errors import PlanFileError, PlanModifiedError
from .build import NEEDS_COMMITTED, Plan, PlannedStatement

# A plan's statements are classified (hazards, facts) where they are parsed, on first use: reading
# a plan file only to know its name and seal (drift, status) loads none of that.
if TYPE_CHECKING:  # annotations only
    from .preflight import Outcome

MAGIC = "-- reconcile plan"
CHECKSUM_KEY = "checksum"
STATEMENT_CHECKSUM = "-- statement-checksum:"
STATEMENT_DIGEST_LENGTH = 16  # hex digits written per statement: enough to tell which one changed
STATEMENTS_MARK = "-- ---- statements ----"
APPROVAL_KEY = "destructive-approved"
COMMIT_MARK = "-- reconcile: commit here"
ONLINE_MARK = "-- reconcile: online step"
BATCH_MARK = "-- reconcile: in batches of"  # ... N rows by its table's primary key, each batch its own transaction
DATA_MARK = "DATA STEP"
PREFLIGHT_MARK = "-- preflight:"  # one header line per pre-flight check counted on the target's rows
BASELINE_KEY = "baseline-covers"  # a baseline's header: the newest plan whose state it builds from empty


def _is_data(statement) -> bool:
    return statement.origin.startswith("data")


_NAME = re.compile(r"[^a-z0-9]+")
_SUMMARY_LINE = re.compile(r"^--\s+(\d+)\. (.*)$")
_DATA_ORIGIN = re.compile(r"-- " + DATA_MARK + r" (.*): hand-written, kept as written")
_COMMIT_REASON = re.compile(re.escape(COMMIT_MARK) + r" \((.*)\)")
_RECORDED_DIGEST = re.compile(re.escape(STATEMENT_CHECKSUM) + r" ([0-9a-f]+)")
_BATCH_ROWS = re.compile(re.escape(BATCH_MARK) + r" (\d+) rows")


def _summary_line(statement) -> str:
    """A statement's line in the header's summary, after its number."""
    return statement.summary + ("  [DESTRUCTIVE]" if statement.destructive else "") + \
        ("  [DATA]" if _is_data(statement) else "")


def canonical_sql(sql: str) -> str:
    """A statement as reading the file gives it back: stripped, without its ';' (what the seal, and
    apply's record of a data step that ran, identify it by)."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def statement_digest(statement, summary_line: str) -> str:
    """What apply runs for one statement, and what the summary says of it."""
    parts = (canonical_sql(statement.sql), "commit" if statement.commit_after else "",
             "online" if statement.online_step else "", "data" if _is_data(statement) else "", summary_line)
    if statement.batch_rows:
        parts += (f"batches of {statement.batch_rows}",)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def plan_checksum(plan: Plan, digests, covers: str | None = None) -> str:
    # The pre-flight lines are sealed too (only when there are some: older plans keep their checksum);
    # so is a baseline's '-- baseline-covers:' (which plans 'check' skips for it).
    checks = [f"{PREFLIGHT_MARK} {outcome.text}" for outcome in plan.preflight]
    covered = [f"{BASELINE_KEY}: {covers}"] if covers is not None else []
    seal = "\n".join([plan.fingerprint_before, plan.fingerprint_after, plan.as_of.isoformat(), *digests, *checks,
                      *covered])
    return "sha256:" + hashlib.sha256(seal.encode()).hexdigest()


def _terminated(sql: str) -> str:
    """The statement with its ';', on a line of its own when the statement ends in a line comment."""
    sql = sql.rstrip()
    if sql.endswith(";"):
        return sql
    last_line = sql.rpartition("\n")[2]
    if "--" in last_line:
        from pglast import parser as pg_parser

        tokens = pg_parser.scan(sql)
        if tokens and tokens[-1].name == "SQL_COMMENT":
            return sql + "\n;"
    return sql + ";"


def render(plan: Plan, covers: str | None = None) -> str:
    """The plan file's text; `covers`: for a baseline, the plan it covers up to."""
    summary_lines = [_summary_line(s) for s in plan.statements]
    digests = [statement_digest(s, line) for s, line in zip(plan.statements, summary_lines)]
    lines = [
        MAGIC,
        f"-- tool: reconcile {plan.tool_version}",
        f"-- created: {plan.created_at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f"-- as-of: {plan.as_of.isoformat()}",
        f"-- fingerprint-before: {plan.fingerprint_before}",
        f"-- fingerprint-after: {plan.fingerprint_after}",
        f"-- {CHECKSUM_KEY}: {plan_checksum(plan, digests, covers)}",
        *([f"-- {BASELINE_KEY}: {covers}"] if covers is not None else []),
        f"-- corrections: {', '.join(plan.corrections_used) or 'none'}",
        f"-- rollback: {plan.rollback_note}",
        f"-- not compared: {'; '.join(plan.not_compared)}",
    ]
    if plan.destructive:
        lines += [
            f"-- destructive: {len(plan.destructive)} statement(s) marked DESTRUCTIVE below can lose data.",
            "--   After review, change the next line to 'yes' (or run apply with --allow-destructive).",
        ]
    else:
        lines.append("-- destructive: none")
    lines.append(f"-- {APPROVAL_KEY}: {'yes' if plan.destructive_approved else 'no'}")
    hazardous = [s for s in plan.statements if s.hazards]
    lines.append(f"-- hazards: {len(hazardous)} statement(s) lock, rewrite or scan existing tables (named below)"
                 if hazardous else "-- hazards: none on existing tables")
    if plan.online_steps:
        lines.append(f"-- online steps: {len(plan.online_steps)} run on their own, outside the plan's transactions "
                     f"(an interrupted apply resumes them)")
    linted = sum(len(s.lint) for s in plan.statements)
    lines.append(f"-- squawk: {linted} finding(s) (named below)" if linted else "-- squawk: no findings")
    lines += [f"{PREFLIGHT_MARK} {outcome.text}" for outcome in plan.preflight]
    lines.append("-- summary:")
    for number, line in enumerate(summary_lines, 1):
        lines.append(f"--   {number:>3}. {line}")
    lines += ["", STATEMENTS_MARK, ""]
    for number, (statement, digest) in enumerate(zip(plan.statements, digests), 1):
        lines.append(f"-- [{number}] {statement.summary}")
        lines.append(f"{STATEMENT_CHECKSUM} {digest[:STATEMENT_DIGEST_LENGTH]}")
        if statement.online_step:
            lines.append(f"{ONLINE_MARK}: runs on its own, once the statements before it are committed")
        if statement.batch_rows:
            lines.append(f"{BATCH_MARK} {statement.batch_rows} rows by its table's primary key, each batch its "
                         f"own transaction (an interrupted apply resumes after the last batch)")
        if _is_data(statement):
            lines.append(f"-- {DATA_MARK} {statement.origin}: hand-written, kept as written")
        if statement.destructive:
            lines.append(f"-- DESTRUCTIVE: {statement.destructive}")
        if statement.hazards:
            lines.append(f"-- hazards: {'; '.join(statement.hazards)}")
        for finding in statement.lint:
            lines.append(f"-- squawk: {finding}")
        lines.append(_terminated(statement.sql))
        if statement.commit_after:
            lines.append(f"{COMMIT_MARK} ({statement.commit_reason or NEEDS_COMMITTED})")
        lines.append("")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _Seal:
    """What the file says was rehearsed: the header's checksum and summary, each statement's digest."""

    checksum: str | None
    summary_lines: dict[int, str]
    statement_digests: tuple[str | None, ...]
    covers: str | None = None  # a baseline's '-- baseline-covers:'


@dataclasses.dataclass(frozen=True)
class PlanFile:
    path: Path
    sha256: str
    text: str = dataclasses.field(repr=False)

    @functools.cached_property
    def _parsed(self) -> tuple[Plan, _Seal]:
        return _parse(self.path, self.text)

    @property
    def plan(self) -> Plan:
        """Classified on first use: drift and status read every plan under migrations/, but only
        pending ones need their statements (thousands, for a first plan)."""
        return self._parsed[0]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def baseline_covers(self) -> str | None:
        """For a baseline (migrations/baselines/), the plan whose state it builds, as its header says."""
        return self._parsed[1].covers

    def check_sealed(self, shown: str) -> None:
        """Refuse a plan whose statements are not the ones its rehearsal proved: edited since, or
        never sealed. `shown`: the file as the user names it (for the 'reconcile rehearse' hint)."""
        problem = self.seal_problem()
        if problem is not None:
            raise PlanModifiedError(f"{shown}: {problem}; nothing was applied: a plan runs only as it was rehearsed; "
                                    f"review the change, then run 'reconcile rehearse {shown}' to rehearse the "
                                    f"edited plan and rewrite its header")

    def seal_problem(self) -> str | None:
        """Why this plan is not the one its rehearsal proved, or None when it is."""
        plan, seal = self._parsed
        if seal.checksum is None:
            return (f"its header has no '-- {CHECKSUM_KEY}:' line, so nothing shows that a rehearsal proved its "
                    f"statements (written by hand or by an older reconcile)")
        digests = []
        for number, statement in enumerate(plan.statements, 1):
            digest = statement_digest(statement, seal.summary_lines.get(number, ""))
            recorded = seal.statement_digests[number - 1]
            if recorded is None or not digest.startswith(recorded):
                first = canonical_sql(statement.sql).splitlines()[0][:80]
                return f"statement {number} ({first}) {'was added' if recorded is None else 'was changed'} after its rehearsal"
            digests.append(digest)
        if plan_checksum(plan, digests, seal.covers) != seal.checksum:
            return ("it no longer matches the checksum written when it was rehearsed (a statement removed, or a "
                    "fingerprint, the as-of date or the summary edited)")
        return None


_STAMP = "%Y%m%d%H%M%S"


def file_name(created_at: dt.datetime, name: str, existing: list[Path] = ()) -> str:
    """<UTC yyyymmddHHMMSS>_<name>.sql, stamped after every existing plan: apply runs plans in name order."""
    stamp = created_at.replace(tzinfo=None)
    for path in existing:
        try:
            other = dt.datetime.strptime(path.name[:14], _STAMP)
        except ValueError:
            continue
        if other >= stamp:
            stamp = other + dt.timedelta(seconds=1)
    slug = _NAME.sub("_", name.lower()).strip("_") or "plan"
    return f"{stamp.strftime(_STAMP)}_{slug}.sql"


ROLLBACK_FOLDER = "rollback"  # migrations/rollback/<plan file name>: never applied by 'apply'


def rollback_path(migrations: Path, plan_name: str) -> Path:
    return migrations / ROLLBACK_FOLDER / plan_name


def write_rollback(reverse: Plan, migrations: Path, plan_name: str) -> Path:
    path = rollback_path(migrations, plan_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    reverse = dataclasses.replace(reverse, rollback_note=f"this file rolls back {plan_name} ('reconcile rollback')")
    path.write_text(render(reverse), encoding="utf-8")
    return path


BASELINE_FOLDER = "baselines"  # migrations/baselines/<stamp>_baseline.sql: read by 'check', never applied


def write_baseline(plan: Plan, migrations: Path, covers: str) -> Path:
    """A baseline under migrations/baselines/, created anew: never over an existing file, nor through a
    symbolic link (mode 'x' refuses both), nor into a baselines folder that is a link."""
    folder = migrations / BASELINE_FOLDER
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise PlanFileError(f"{folder}: not a folder of the project (a symbolic link?); baselines are written "
                            f"only into migrations/{BASELINE_FOLDER}/ itself")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(plan.created_at, "baseline", list_plans(folder))
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(render(plan, covers))
    except FileExistsError as exc:
        raise PlanFileError(f"{path}: already exists; nothing was written") from exc
    return path


def write(plan: Plan, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(plan.created_at, name, list_plans(directory))
    if path.exists():
        raise PlanFileError(f"{path}: a plan with this name already exists; choose another --name")
    path.write_text(render(plan), encoding="utf-8")
    return path


def rewrite(plan: Plan, path: Path) -> None:
    """Write a re-rehearsed plan over its file (same name: its place in the apply order is kept)."""
    path.write_text(render(plan), encoding="utf-8")


def read(path: Path) -> PlanFile:
    """A plan file, its header checked so that a broken one is reported by any command. Its statements
    are read (and their syntax checked) when a command needs them: a plan not yet applied, or one
    rehearsed or rolled back; drift and status pass over applied plans without loading the parser."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"{path}: cannot read: {exc}") from exc
    _header(path, text)
    return PlanFile(path, hashlib.sha256(text.encode()).hexdigest(), text)


def _header(path: Path, text: str):
    """The header's keys, the numbered summary lines, the body, the as-of date and the approval."""
    if not text.startswith(MAGIC) or STATEMENTS_MARK not in text:
        raise PlanFileError(f"{path}: not a reconcile plan (it must start with '{MAGIC}')")
    header_text, body = text.split(STATEMENTS_MARK, 1)
    header, summary = {}, {}
    for line in header_text.splitlines():
        match = re.match(r"^-- ([a-z-]+): (.*)$", line)
        if match:
            header.setdefault(match.group(1), match.group(2).strip())
        elif match := _SUMMARY_LINE.match(line):
            summary[int(match.group(1))] = match.group(2)
    for key in ("fingerprint-before", "fingerprint-after", "as-of"):
        if key not in header:
            raise PlanFileError(f"{path}: header line '-- {key}:' is missing")
    approval = header.get(APPROVAL_KEY, "no").lower()
    if approval not in ("yes", "no"):
        raise PlanFileError(f"{path}: '-- {APPROVAL_KEY}:' must be yes or no, got {approval!r}")
    try:
        as_of = dt.date.fromisoformat(header["as-of"])
    except ValueError as exc:
        raise PlanFileError(f"{path}: as-of: {exc}") from exc
    return header, summary, body, as_of, approval == "yes"


def _sections(path: Path, text: str):
    """The header (see _header) and the body's statements, as slices of the body."""
    from pglast import parser as pg_parser

    header, summary, body, as_of, approved = _header(path, text)
    try:
        slices = pg_parser.split(body, with_parser=True, only_slices=True)
    except pg_parser.ParseError as exc:
        header_lines = text.split(STATEMENTS_MARK, 1)[0].count("\n")
        line = body.count("\n", 0, exc.args[1]) + header_lines + 1 if len(exc.args) > 1 else "?"
        raise PlanFileError(f"{path}:{line}: {exc.args[0]}") from exc
    return header, summary, body, slices, as_of, approved


def _parse(path: Path, text: str) -> tuple[Plan, _Seal]:
    from ..diff.statement_facts import read_facts
    from .hazards import classify

    header, summary, body, slices, as_of, approved = _sections(path, text)
    body_line = text.split(STATEMENTS_MARK, 1)[0].count("\n") + 1  # the file's line the body begins on
    statements, recorded = [], []
    for number, piece in enumerate(slices):
        sql = body[piece].strip() + ";"
        begins = piece.start + len(body[piece]) - len(body[piece].lstrip())
        facts = read_facts(sql)  # the boundary: a statement read back from the file
        classification = classify(sql, facts)
        following = body[piece.stop:slices[number + 1].start if number + 1 < len(slices) else len(body)]
        preceding = body[slices[number - 1].stop if number else 0:piece.start]
        data = _DATA_ORIGIN.search(preceding)
        origin = (data.group(1) if data else "data") if f"-- {DATA_MARK}" in preceding else "file"
        commit = _COMMIT_REASON.search(following)
        digest = _RECORDED_DIGEST.search(preceding)
        batch = _BATCH_ROWS.search(preceding)
        recorded.append(digest.group(1) if digest else None)
        statements.append(PlannedStatement(sql, classification.summary, origin, facts, classification.destructive,
                                           commit_after=COMMIT_MARK in following,
                                           online_step=ONLINE_MARK in preceding,
                                           batch_rows=int(batch.group(1)) if batch else 0,
                                           commit_reason=commit.group(1) if commit else "",
                                           source_file=path, source_line=body_line + body.count("\n", 0, begins)))
    seal = _Seal(header.get(CHECKSUM_KEY), summary, tuple(recorded), header.get(BASELINE_KEY))
    return Plan(
        statements=tuple(statements),
        as_of=as_of,
        fingerprint_before=header["fingerprint-before"],
        fingerprint_after=header["fingerprint-after"],
        created_at=_created(header.get("created")),
        tool_version=header.get("tool", "").removeprefix("reconcile ").strip(),
        corrections_used=tuple(c.strip() for c in header.get("corrections", "").split(",") if c.strip() not in ("", "none")),
        destructive_approved=approved,
        preflight=_preflight(text.split(STATEMENTS_MARK, 1)[0]),
    ), seal


def _preflight(header_text: str) -> tuple[Outcome, ...]:
    """The pre-flight lines as written (their text is sealed; 'rehearse' counts them again)."""
    from .preflight import Outcome

    lines = [line[len(PREFLIGHT_MARK):].strip() for line in header_text.splitlines() if line.startswith(PREFLIGHT_MARK)]
    return tuple(Outcome(int(line.split(".", 1)[0]) if line.split(".", 1)[0].isdigit() else 0, line) for line in lines)


def _created(value: str | None) -> dt.datetime:
    try:
        return dt.datetime.strptime(value or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.timezone.utc)


def list_plans(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == ".sql")
