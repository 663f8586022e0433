"""`-- reconcile: using <expression>` before a column: a type change PostgreSQL cannot make by a cast
(bigint epoch seconds -> timestamptz) is planned with the declared expression, and without it the plan
is refused with the directive to write. The expression is untrusted input: one expression, or refused."""

import pytest

from reconcile_engine.declared.renames import usings_in
from reconcile_engine.errors import DeclaredStateError

AS_OF = "2026-06-01"
EVENTS = """CREATE TABLE events (
    id int PRIMARY KEY,
{directive}    happened {type} NOT NULL
);
"""


def _declare(project, kind, directive=""):
    (project / "schema" / "050_events.sql").write_text(EVENTS.format(type=kind, directive=directive))


def test_a_type_change_without_a_cast_is_refused_then_planned_with_the_declared_using(cli, project, target_url, sql):
    _declare(project, "bigint")
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "INSERT INTO events VALUES (1, 0), (2, 1790000000)")
    _declare(project, "timestamptz")

    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "retype")

    assert code == 1
    assert "cannot cast type bigint to timestamp with time zone" in err
    assert "'-- reconcile: using <expression>'" in err and "right before the column happened" in err
    assert not list((project / "migrations").glob("*_retype.sql"))

    _declare(project, "timestamptz", "    -- reconcile: using to_timestamp(happened)\n")
    code, out, err = cli("plan", "--as-of", AS_OF, "--name", "retype")
    assert code == 0, err
    assert "USING to_timestamp(happened)" in out and "columns.using" in out
    code, out, err = cli("apply", "--allow-destructive")  # a type change that can reject values is gated
    assert code == 0, err
    assert sql(target_url, "SELECT extract(epoch FROM happened)::bigint FROM events ORDER BY id") == [(0,), (1790000000,)]
    assert cli("drift", "--as-of", AS_OF)[0] == 0
    assert cli("plan", "--as-of", AS_OF, "--detailed-exitcode")[0] == 0  # the directive, kept, does nothing more


@pytest.mark.parametrize("hostile", ["happened); DROP TABLE events; --", "happened FROM pg_authid",
                                     "1 AS x, 2", ""])
def test_a_using_directive_is_one_expression_or_refused(hostile):
    sql = EVENTS.format(type="timestamptz", directive=f"    -- reconcile: using {hostile}\n")

    with pytest.raises(DeclaredStateError) as refused:
        usings_in(sql, "schema/050_events.sql")

    assert str(refused.value).startswith("schema/050_events.sql:3: using ")


def test_a_using_directive_must_come_before_a_column():
    with pytest.raises(DeclaredStateError, match="must come right before a column"):
        usings_in("-- reconcile: using 1\nCREATE TABLE t (a int);", "f.sql")
