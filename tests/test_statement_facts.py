"""Stage tests for reading a statement once into facts (diff/statement_facts.py): what the corrections,
hazards, online steps and the runner read instead of parsing the statement again."""

import pytest

from reconcile_engine.diff.operations import AlterAction
from reconcile_engine.diff.statement_facts import read_facts


def test_a_foreign_key_added_not_valid_names_its_table_constraint_and_referenced_table():
    facts = read_facts('alter table "public"."t" add constraint "t_u_fkey" foreign key (u_id) '
                       'references "public"."u"(id) not valid;')
    assert facts.node == "AlterTableStmt" and facts.relation == "public.t"
    assert facts.actions == (AlterAction("AT_AddConstraint", "t_u_fkey", constraint_type="CONSTR_FOREIGN",
                                         not_valid=True, references="public.u", keys=("u_id",),
                                         referenced_keys=("id",)),)


@pytest.mark.parametrize("sql, expected", [
    ('alter table "public"."t" validate constraint "t_u_fkey";', AlterAction("AT_ValidateConstraint", "t_u_fkey")),
    ('alter table "public"."t" alter column "made" set default now();', AlterAction("AT_ColumnDefault", "made",
                                                                                   sets_default=True)),
    ('alter table "public"."t" alter column "made" drop default;', AlterAction("AT_ColumnDefault", "made")),
    ("alter table t add column c int default random();",
     AlterAction("AT_AddColumn", "c", default_may_rewrite=True, has_default=True)),
    ("alter table t add column c timestamptz default now()::timestamptz;", AlterAction("AT_AddColumn", "c",
                                                                                       has_default=True)),
    ("alter table t add column c int generated always as identity;",
     AlterAction("AT_AddColumn", "c", default_may_rewrite=True, has_default=True)),
    ("alter table t add column c text not null;", AlterAction("AT_AddColumn", "c", not_null=True)),
    ("alter table t alter column c type pg_catalog.varchar(20);",
     AlterAction("AT_AlterColumnType", "c", new_type="varchar(20)")),
    ("alter table t detach partition public.p concurrently;",
     AlterAction("AT_DetachPartition", partition="public.p", concurrent=True)),
    ("alter table t add constraint pk primary key using index i;",
     AlterAction("AT_AddConstraint", "pk", constraint_type="CONSTR_PRIMARY", using_index="i")),
])
def test_each_alter_table_action_is_read_with_what_its_judges_need(sql, expected):
    assert read_facts(sql).actions == (expected,)


def test_functions_created_and_called_are_named():
    assert read_facts("create or replace function public.f() returns int language sql as $$ select 1 $$;"
                      ).function_created == "f"
    facts = read_facts('create table "public"."t" ("made" timestamptz default public.stamp(lower(x)));')
    assert facts.functions_called == {"stamp", "lower"} and facts.creates == {"public.t"}


def test_drops_comments_indexes_and_transaction_control():
    drop = read_facts('drop materialized view if exists "public"."mv" cascade;')
    assert (drop.node, drop.object_type, drop.objects, drop.cascade) == ("DropStmt", "OBJECT_MATVIEW", ("public.mv",), True)
    assert read_facts("drop function public.f(int, text);").objects == ("public.f(integer, text)",)
    index = read_facts('create unique index concurrently mv_org_idx on "public"."mv" using btree (org_id);')
    assert (index.node, index.name, index.relation, index.concurrent) == ("IndexStmt", "mv_org_idx", "public.mv", True)
    assert read_facts("comment on table public.t is 'x';").objects == ("public.t",)
    assert read_facts("begin;").transaction_control and not read_facts("select 1;").transaction_control


def test_several_statements_in_one_text_keep_each_ones_facts():
    facts = read_facts("create table a (x int); create table b (y int);")
    assert facts.node == "" and [p.relation for p in facts.parts] == ["a", "b"]
    assert facts.creates == {"public.a", "public.b"}


def test_a_statement_the_parser_refuses_is_not_recognised_as_anything():
    facts = read_facts("create table t (a int")
    assert not facts.parsed and facts.node == "?" and not facts.creates


@pytest.mark.parametrize("written, printed", [
    ("bigint", "bigint"), ("int", "integer"), ("varchar(20)", "varchar(20)"), ("numeric(10,2)", "numeric(10, 2)"),
    ("timestamptz", "timestamptz"), ("timestamp with time zone", "timestamp with time zone"),
    ("double precision", "double precision"), ("int8[]", "int8[]"), ('"MyType"', '"MyType"'),
    ("public.mood", "public.mood"), ("char(1)", "char"),
])
def test_types_are_printed_as_postgresql_s_printer_prints_them(written, printed):
    """The summary's 'change type of c to …' and the widening rules read this text."""
    from pglast import parse_sql
    from pglast.stream import RawStream

    assert RawStream()(parse_sql(f"alter table t alter column c type {written}")[0].stmt.cmds[0].def_.typeName) == printed
    assert read_facts(f"alter table t alter column c type {written}").actions[0].new_type == printed
