"""Stage tests for squawk's findings on a plan (checks/squawk.py): run in pieces, they are the ones a
single run over the whole plan gives, each on the statement it concerns."""

from reconcile_engine.checks.squawk import squawk
from reconcile_engine.diff.statement_facts import operation

PLAN = [
    "CREATE TABLE public.fresh (\n    id bigint PRIMARY KEY,\n    body text\n)",
    "CREATE INDEX fresh_body_idx ON public.fresh (body)",  # a new table: not a finding
    "ALTER TABLE public.account\n    ADD COLUMN tier text NOT NULL",
    "CREATE INDEX account_tier_idx\n    ON public.account (tier)",
    "ALTER TABLE public.account ALTER COLUMN name TYPE varchar(40)",
    "CREATE TABLE public.other (id bigint PRIMARY KEY)",
    "ALTER TABLE public.note ADD CONSTRAINT note_account_fk FOREIGN KEY (account_id) REFERENCES public.account (id)",
]


def _findings(piece_bytes: int):
    statements = [operation(sql, "test") for sql in PLAN]
    return [(f.statement, f.rule) for f in squawk(statements, 15, piece_bytes=piece_bytes)]


def test_findings_in_pieces_are_those_of_one_run():
    whole = _findings(10 ** 9)
    assert (3, "adding-required-field") in whole
    assert (4, "require-concurrent-index-creation") in whole
    assert (5, "changing-column-type") in whole
    assert (7, "adding-foreign-key-constraint") in whole
    assert all(statement != 2 for statement, _ in whole)  # the index on a table the plan creates
    # one statement a piece (a piece ends once it holds at least a byte), and two or three a piece
    assert _findings(1) == whole
    assert _findings(120) == whole


def test_a_finding_in_the_last_piece_is_named_on_its_statement():
    statements = [operation(sql, "test") for sql in PLAN[:2]] + [operation("CREATE INDEX ON public.account (tier)", "test")]
    found = squawk(statements, 15, piece_bytes=1)
    assert [(f.statement, f.rule) for f in found] == [(3, "require-concurrent-index-creation")]
