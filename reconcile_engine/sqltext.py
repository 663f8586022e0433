"""Shared text helpers for SQL the engine writes: identifier quoting and the jinja2 environment."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # jinja2 is loaded by the first template rendered, not by every command
    import jinja2

_PLAIN_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL's quote_ident does (a dotted name is quoted per part)."""
    if "." in name and not name.startswith('"'):
        return ".".join(quote_ident(part) for part in name.split("."))
    if _PLAIN_IDENT.match(name):
        return f'"{name}"' if name in _RESERVED else name
    return '"' + name.replace('"', '""') + '"'


def quote_part(name: str) -> str:
    """Quote one identifier (a schema's, a table's or a column's own name, dots and all)."""
    return '"' + name.replace('"', '""') + '"' if "." in name else quote_ident(name)


def dollar_quoted(body: str, tag: str = "reconcile") -> str:
    """`body` between dollar quotes whose tag it does not contain (a name in it cannot end the quote)."""
    chosen, n = tag, 0
    while f"${chosen}$" in body:
        n += 1
        chosen = f"{tag}_{n}"
    return f"${chosen}$\n{body}\n${chosen}$"


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
    import jinja2
    import jinja2.sandbox

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
