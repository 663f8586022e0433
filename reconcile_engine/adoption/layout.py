"""Stage A5 (pull): the dumped definitions -> the declared files, as {path in the project: text}.

The declared files load folder by folder (schema/, partitions/, views/, policies/) and by name within
each, so the names carry pg_dump's order, in which everything comes after what it depends on:

  schema/000_types.sql          schemas, types, enums, domains, sequences no table owns
  schema/010_functions.sql      functions (aggregates, casts, operators) that pg_dump writes before tables
  schema/NNN_<table>.sql        a table per file in pg_dump's order: the table, its sequences, keys,
                                indexes, triggers, comments, grants, and its partitions unless a spec
                                makes them; a function or type pg_dump writes among the tables (it
                                depends on one) gets a numbered file of its own there
  schema/900_foreign_keys.sql   every foreign key: it may reference a table of a later file
  partitions/<table>.yaml       the specs partition_inference.py found
  views/NNN_<view>.sql          views and materialized views in pg_dump's order, with their indexes
  policies/<table>.sql          ENABLE / FORCE ROW LEVEL SECURITY and the table's policies

File names keep the database's names where they are safe in a path (letters, digits, '_', '.', '-'),
replace anything else with '_', never start with a dot, and get _2, _3, ... when two would clash
(also on a case-insensitive disk). Outside the public schema a name is prefixed with its schema.
"""

from __future__ import annotations

import dataclasses
import fnmatch

from .facts import DumpFacts
from .partition_inference import InferredSpec
from .subjects import ATTACH, DEFINES, FOREIGN_KEY, INDEX_ATTACH, POLICY, ROW_SECURITY, Name, qualified

TYPES_FILE = "schema/000_types.sql"
FUNCTIONS_FILE = "schema/010_functions.sql"
FOREIGN_KEYS_FILE = "schema/900_foreign_keys.sql"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# Numbered files: 100, 110, ... 890 in schema/ (between the functions and the foreign keys), 010 ...
# in views/, gaps left for files added by hand; past 80 files, '1' and the zero-padded index (1000,
# 1001, ... for hundreds), which sort the same way.
_FIRST_NUMBER = {"schema": 100, "views": 10}
_HEADERS = {
    FOREIGN_KEYS_FILE: "-- Foreign keys come last: a key may reference a table declared in a later file.\n\n",
}
# Around SQL functions, as pg_dump does: a body may name a table of a later file (it is checked when
# the function runs; the target's catalog already accepted it).
_BODIES_UNCHECKED = ("-- As pg_dump does: these SQL function bodies may name tables declared in later files.\n"
                     "SET check_function_bodies = false", "RESET check_function_bodies")


@dataclasses.dataclass
class _File:
    folder: str
    label: str  # the object it is named after, as the database spells it
    statements: list = dataclasses.field(default_factory=list)


class _Layout:
    def __init__(self, facts: DumpFacts, specs: list[InferredSpec], ignore: tuple[str, ...]):
        self.facts, self.ignore = facts, ignore
        self.made_by_specs = frozenset().union(*(spec.partitions for spec in specs))
        self.fixed = {path: _File(*path.split("/", 1)) for path in (TYPES_FILE, FUNCTIONS_FILE, FOREIGN_KEYS_FILE)}
        self.numbered: dict[str, list[_File]] = {"schema": [], "views": []}
        self.of_relation: dict[Name, _File] = {}
        self.of_routine_or_type: dict[tuple[str, Name], _File] = {}
        self.policies: dict[Name, _File] = {}
        self.ignored = 0
        self.notes: list[str] = []

    def place(self, statement) -> None:
        subject = statement.subject
        owner = self.facts.relation_of(subject)
        if self._ignored(subject.name if subject.kind != "schema" else None, owner):
            self.ignored += 1
            return
        if subject.role == FOREIGN_KEY and self._ignored(subject.references, None):
            self.notes.append(f"foreign key {subject.constraint} of {_label(owner)} references "
                              f"{_label(subject.references)}, which ignore: leaves out: plan cannot build it "
                              f"until that table is declared (or the key is removed)")
        if self._made_by_spec(subject, owner):
            return
        self._file_for(statement, owner).statements.append(statement)

    def _ignored(self, name: Name | None, owner: Name | None) -> bool:
        names = {name, owner} | ({self.facts.root(owner)} if owner else set())
        return any(fnmatch.fnmatchcase(f"{n[0]}.{n[1]}", glob) for n in names if n for glob in self.ignore)

    def _made_by_spec(self, subject, owner: Name | None) -> bool:
        if subject.role == INDEX_ATTACH:
            return self.facts.index_table.get(subject.child) in self.made_by_specs
        if subject.role == ATTACH:
            return subject.child in self.made_by_specs
        return owner in self.made_by_specs

    def _file_for(self, statement, owner: Name | None) -> _File:
        subject = statement.subject
        if subject.role == FOREIGN_KEY or (owner, subject.constraint) in self.facts.foreign_keys:
            return self.fixed[FOREIGN_KEYS_FILE]
        if subject.role in (ROW_SECURITY, POLICY):
            return self.policies.setdefault(owner, _File("policies", _label(owner)))
        if owner is not None:
            root = self.facts.root(owner)
            if root not in self.of_relation:
                folder = "views" if self.facts.relation_kind.get(root) == "view" else "schema"
                self.of_relation[root] = self._numbered(folder, root)
            return self.of_relation[root]
        if subject.kind in ("function", "type"):
            return self._routine_or_type(statement)
        if subject.kind in ("schema", "sequence"):
            return self.fixed[TYPES_FILE]
        return self.fixed[FUNCTIONS_FILE]  # casts, operators, ...: after the functions they name

    def _routine_or_type(self, statement) -> _File:
        """The functions or types file, before every table; but one that needs a relation (a table's
        row type in its signature or columns, or a BEGIN ATOMIC body naming tables: pg_dump writes it
        after them) gets a numbered file of its own where pg_dump writes it, in views/ once views began."""
        subject = statement.subject
        key = (subject.kind, subject.name)
        if subject.role == DEFINES:
            if self.of_relation and self._needs_a_relation(statement):
                self.of_routine_or_type[key] = self._numbered("views" if self.numbered["views"] else "schema",
                                                              subject.name)
            else:
                self.of_routine_or_type[key] = self.fixed[FUNCTIONS_FILE if subject.kind == "function" else TYPES_FILE]
        return self.of_routine_or_type.get(key) or self.fixed[FUNCTIONS_FILE if subject.kind == "function"
                                                               else TYPES_FILE]

    def _needs_a_relation(self, statement) -> bool:
        if statement.node.get("sql_body"):
            return True
        numbered = {name for (kind, name), file in self.of_routine_or_type.items()
                    if kind == "type" and file is not self.fixed[TYPES_FILE]}
        return any(name in self.facts.relation_kind or name in numbered for name in _type_names(statement.node))

    def _numbered(self, folder: str, name: Name) -> _File:
        file = _File(folder, _label(name))
        self.numbered[folder].append(file)
        return file

    def files(self) -> dict[str, str]:
        paths: dict[str, _File] = {path: file for path, file in self.fixed.items() if file.statements}
        for folder, files in self.numbered.items():
            for index, file in enumerate(files):
                paths[_unique(paths, f"{folder}/{_number(folder, index, len(files))}_{safe_file_name(file.label)}",
                              ".sql")] = file
        for file in self.policies.values():
            paths[_unique(paths, f"policies/{safe_file_name(file.label)}", ".sql")] = file
        return {path: _text(path, file.statements) for path, file in paths.items()}


def lay_out(statements, facts: DumpFacts, specs: list[InferredSpec], ignore: tuple[str, ...]):
    """({path: text} for every declared file, how many statements an ignore glob left out, notes)."""
    layout = _Layout(facts, specs, ignore)
    for statement in statements:
        layout.place(statement)
    files = layout.files()
    for spec in specs:
        files[_unique(files, f"partitions/{safe_file_name(_label((spec.spec.schema, spec.spec.table)))}",
                      ".yaml")] = spec.yaml()
    return files, layout.ignored, layout.notes


def _label(name: Name) -> str:
    return name[1] if name[0] == "public" else f"{name[0]}.{name[1]}"


def safe_file_name(name: str) -> str:
    """`name` as one path component: only letters, digits, '_', '.' and '-', never a leading dot or
    dash (a hidden file, an option), never empty; so never a separator, '.' or '..'."""
    safe = "".join(c if c in _SAFE else "_" for c in name)
    return "_" + safe[1:] if not safe or safe[0] in ".-" else safe


def _unique(taken, stem: str, suffix: str) -> str:
    """stem + suffix, or stem_2 + suffix, ...: the first that no taken path equals, ignoring case."""
    folded = {path.casefold() for path in taken}
    path, number = stem + suffix, 1
    while path.casefold() in folded:
        number += 1
        path = f"{stem}_{number}{suffix}"
    return path


def _number(folder: str, index: int, count: int) -> str:
    first = _FIRST_NUMBER[folder]
    if first + 10 * (count - 1) <= 890:
        return f"{first + 10 * index:03d}"
    return f"1{index:0{len(str(count))}d}"


def _text(path: str, statements) -> str:
    body = [statement.text.strip() for statement in statements]
    sql_bodies = [s for s in statements if s.node_type == "CreateFunctionStmt" and _body_checked_on_creation(s.node)]
    if sql_bodies:
        body = [_BODIES_UNCHECKED[0], *body, _BODIES_UNCHECKED[1]]
    return _HEADERS.get(path, "") + "".join(f"{text};\n\n" for text in body).rstrip("\n") + "\n"


def _type_names(value):
    """The schema-qualified type names anywhere in a parse tree (pg_dump qualifies every type it did
    not get from pg_catalog, so a one-part name is a built-in)."""
    if isinstance(value, list):
        for item in value:
            yield from _type_names(item)
    elif isinstance(value, dict):
        if "typemod" in value and len(value.get("names", ())) > 1:  # a TypeName node
            yield qualified(value["names"])
        for item in value.values():
            yield from _type_names(item)


def _body_checked_on_creation(node: dict) -> bool:
    """A LANGUAGE sql function whose body is a string (not BEGIN ATOMIC): PostgreSQL checks it against
    the catalog when it is created (check_function_bodies), so the tables it names must exist by then."""
    options = {o["DefElem"]["defname"]: o["DefElem"].get("arg") for o in node.get("options", ()) if "DefElem" in o}
    language = (options.get("language") or {}).get("String", {}).get("sval", "")
    return language.lower() == "sql" and "as" in options and not node.get("sql_body")
