"""Stage tests for hazard classification: PostgreSQL's parser plus the current column types, no regexes."""

import pytest

from reconcile_engine.hazards import classify
from reconcile_engine.inspection import CatalogSnapshot

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
    assert bool(classify(sql, COLUMNS).destructive) is destructive


def test_type_change_without_knowing_the_old_type_is_destructive():
    assert classify('alter table "public"."x" alter column "c" set data type bigint;').destructive


def test_summaries_name_the_object():
    assert classify('alter table "public"."t" alter column "big" drop default;').summary == \
        "alter table public.t: drop default of big"
    assert classify('drop materialized view if exists "public"."mv";').summary == "drop materialized view public.mv"
    assert classify("CREATE UNIQUE INDEX i ON public.t USING btree (x);").summary == "create index i on public.t"


def test_narrowing_message_says_from_and_to():
    reason = classify('alter table "public"."t" alter column "big" set data type integer;', COLUMNS).destructive
    assert reason == "changes public.t.big from bigint to integer: values may be lost or rejected"
