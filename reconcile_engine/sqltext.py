"""Shared text helpers for SQL the engine writes: identifier quoting and the jinja2 environment."""

from __future__ import annotations

import functools
import re

import jinja2
import jinja2.sandbox
from pglast import parse_sql
from pglast.parser import parse_sql_json

_PLAIN_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL's quote_ident does (a dotted name is quoted per part)."""
    if "." in name and not name.startswith('"'):
        return ".".join(quote_ident(part) for part in name.split("."))
    if _PLAIN_IDENT.match(name):
        return f'"{name}"' if name in _RESERVED else name
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# The words PostgreSQL reserves that could plausibly be table or column names.
_RESERVED = frozenset(
    "all analyse analyze and any array as asc asymmetric both case cast check collate column constraint "
    "create current_catalog current_date current_role current_time current_timestamp current_user default "
    "deferrable desc distinct do else end except false fetch for foreign from grant group having in "
    "initially intersect into lateral leading limit localtime localtimestamp not null offset on only or "
    "order placing primary references returning select session_user some symmetric system_user table "
    "then to trailing true union unique user using variadic when where window with".split()
)


@functools.lru_cache(maxsize=None)
def jinja_environment(search_path: str | None = None) -> jinja2.Environment:
    """Templates shipped with the engine, plus (when given) a project folder for .sql.j2 files.

    Sandboxed: a declared template is untrusted input, and an unsandboxed one can reach Python's
    internals ({{ ''.__class__.__mro__ }}) and run code in reconcile's own process."""
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("reconcile_engine", "templates")]
    if search_path:
        loaders.insert(0, jinja2.FileSystemLoader(search_path))
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["qident"] = quote_ident
    env.filters["qliteral"] = quote_literal
    return env


@functools.lru_cache(maxsize=100_000)
def parse_statements(sql: str) -> tuple | None:
    """pglast's parse tree of `sql` (a tuple of RawStmt), or None when it cannot be parsed.

    Cached because a plan's statements are examined by every correction and classifier: each is
    parsed once. Callers must not modify the tree (online.py, which does, parses its own copy).
    """
    try:
        return tuple(parse_sql(sql))
    except Exception:  # pglast raises its ParseError, and others on input it cannot represent
        return None


# Node types (CamelCase) and enum values (UPPER_CASE) in the parser's JSON, with some names from the SQL.
_JSON_NAMES = re.compile(r'"([A-Z][A-Za-z0-9_]*)"')


@functools.lru_cache(maxsize=100_000)
def _names_in_tree(sql: str) -> frozenset[str]:
    try:
        tree = parse_sql_json(sql)
    except Exception:  # what cannot be parsed is not recognised by parse_statements either
        return frozenset()
    return frozenset(_JSON_NAMES.findall(tree))


def may_hold(sql: str, *names: str) -> bool:
    """Whether the parse tree of `sql` can hold one of these node types ("DropStmt") or enum values
    ("CONSTR_FOREIGN"): a look at the parser's JSON text, which costs a twentieth of building the
    Python tree, so that a correction looking for one kind of statement builds trees only for the
    statements that can be of that kind. Never a false "no": every node type is a key in that JSON
    (a name in the SQL that happens to match only costs a parse). The JSON leaves out an enum field
    holding its first value, so only values other than the first may be asked about."""
    return not _names_in_tree(sql).isdisjoint(names)
