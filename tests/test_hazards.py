"""Stage tests for hazard classification: PostgreSQL's parser plus the current column types, no regexes."""

import pytest

from reconcile_engine.diff.statement_facts import operation, read_facts
from reconcile_engine.planning.hazards import classify
from reconcile_engine.inspection.snapshot import CatalogSnapshot

def _classify(sql, current=None):
    """The classification of a statement read the way the diff reads it: once, into facts."""
    return classify(sql, read_facts(sql), current)


COLUMNS = CatalogSnapshot({
    ("column", "public.t.big"): "bigint not null",
    ("column", "public.t.small"): "integer",
    ("column", "public.t.name"): "character varying(20)",
    ("column", "public.t.amount"): "numeric(10,2)",
})


@pytest.mark.parametrize("sql, destructive", [
    ('drop table "public"."t";', True),
    ('alter table "public"."t" drop column "name";', True),
    ('alter table "public"."t" alter column "big" set data type integer using "big"::integer;', True),
    ('alter table "public"."t" alter column "name" set data type character varying(10);', True),
    ('alter table "public"."t" alter column "amount" set data type numeric(6,2);', True),
    ("drop schema app cascade;", True),
    ("drop sequence s;", True),
    ("truncate t;", True),
    ('alter table "public"."t" alter column "small" set data type bigint using "small"::bigint;', False),
    ('alter table "public"."t" alter column "name" set data type text;', False),
    ('alter table "public"."t" alter column "name" set data type character varying(40);', False),
    ('alter table "public"."t" alter column "amount" set data type numeric(12,2);', False),
    ('alter table "public"."t" alter column "big" drop default;', False),
    ('alter table "public"."t" alter column "big" drop not null;', False),
    ('drop index if exists "public"."t_idx";', False),
    ('drop view if exists "public"."v";', False),
    ('drop policy "p" on "public"."t";', False),
    ("create table t (id int);", False),
])
def test_destructive_or_not(sql, destructive):
    assert bool(_classify(sql, COLUMNS).destructive) is destructive


def test_type_change_without_knowing_the_old_type_is_destructive():
    assert _classify('alter table "public"."x" alter column "c" set data type bigint;').destructive


def test_summaries_name_the_object():
    assert _classify('alter table "public"."t" alter column "big" drop default;').summary == \
        "alter table public.t: drop default of big"
    assert _classify('drop materialized view if exists "public"."mv";').summary == "drop materialized view public.mv"
    assert _classify("CREATE UNIQUE INDEX i ON public.t USING btree (x);").summary == "create index i on public.t"


def test_narrowing_message_says_from_and_to():
    reason = _classify('alter table "public"."t" alter column "big" set data type integer;', COLUMNS).destructive
    assert reason == "changes public.t.big from bigint to integer: values may be lost or rejected"


from reconcile_engine.planning.hazards import (
    ACCESS_EXCLUSIVE, BLOCKS_WRITES, BUILDS_INDEX, DELETES_DATA, NOT_IN_TRANSACTION, REWRITES_TABLE, SCANS_TO_VALIDATE, hazards_of,
)
from reconcile_engine.planning.build import live_hazards


@pytest.mark.parametrize("sql, expected", [
    ("create index i on t (x)", {BUILDS_INDEX}),
    ("create index concurrently i on t (x)", {NOT_IN_TRANSACTION}),
    ("alter table t add column x int default 0", {ACCESS_EXCLUSIVE}),
    ("alter table t add column x text default gen_random_uuid()::text", {ACCESS_EXCLUSIVE, REWRITES_TABLE}),
    ('alter table "public"."t" alter column "small" set data type bigint', {ACCESS_EXCLUSIVE, REWRITES_TABLE}),
    ('alter table "public"."t" alter column "name" set data type text', {ACCESS_EXCLUSIVE}),
    ('alter table "public"."t" alter column "big" set data type integer', {ACCESS_EXCLUSIVE, REWRITES_TABLE, DELETES_DATA}),
    ("alter table t add constraint c check (x > 0) not valid", {ACCESS_EXCLUSIVE}),
    ("alter table t add constraint c check (x > 0)", {ACCESS_EXCLUSIVE, SCANS_TO_VALIDATE}),
    ("alter table t validate constraint c", {SCANS_TO_VALIDATE}),
    ("alter table t add constraint f foreign key (x) references u (id)", {BLOCKS_WRITES, SCANS_TO_VALIDATE}),
    ("alter table t alter column x set not null", {ACCESS_EXCLUSIVE, SCANS_TO_VALIDATE}),
    ("alter table t add primary key (id)", {ACCESS_EXCLUSIVE, BUILDS_INDEX}),
    ("drop table t", {ACCESS_EXCLUSIVE, DELETES_DATA}),
    ("drop index concurrently i", {NOT_IN_TRANSACTION}),
    ("create policy p on t using (true)", {ACCESS_EXCLUSIVE}),
    ("alter table p detach partition c concurrently", {NOT_IN_TRANSACTION}),
    ("vacuum t", {NOT_IN_TRANSACTION}),
    ("comment on table t is 'x'", set()),
])
def test_hazard_classes(sql, expected):
    assert set(hazards_of(read_facts(sql), COLUMNS)) == expected


def test_hazards_on_tables_new_in_the_plan_do_not_count():
    found = live_hazards([operation(sql, "migra") for sql in ("create table public.n (id int)",
                          "create index n_id on public.n (id)", "create index t_x on public.t (x)")], COLUMNS)
    assert found == [(), (), (BUILDS_INDEX,)]
