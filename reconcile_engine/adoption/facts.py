"""Stage A3b (pull): how the dumped statements connect, read once over all of them.

pg_dump writes a table, its sequences, its keys, its indexes and its partitions' attachments far
apart (pre-data, then post-data), and names an index or a sequence without its table. These maps say
which relation each statement belongs to, whatever its position in the dump.
"""

from __future__ import annotations

import dataclasses

from .statements import DumpedStatement
from .subjects import ATTACH, DEFINES, FOREIGN_KEY, Name, Subject


@dataclasses.dataclass
class DumpFacts:
    relation_kind: dict[Name, str] = dataclasses.field(default_factory=dict)  # "table" or "view"
    creation: dict[Name, DumpedStatement] = dataclasses.field(default_factory=dict)  # each table's CREATE
    partition_parent: dict[Name, Name] = dataclasses.field(default_factory=dict)
    partition_bound: dict[Name, dict] = dataclasses.field(default_factory=dict)
    index_table: dict[Name, Name] = dataclasses.field(default_factory=dict)
    sequence_table: dict[Name, Name] = dataclasses.field(default_factory=dict)  # owned, or an identity's
    foreign_keys: set[tuple[Name, str]] = dataclasses.field(default_factory=set)  # (table, constraint)

    @classmethod
    def read(cls, statements) -> "DumpFacts":
        facts = cls()
        for statement in statements:
            subject = statement.subject
            if subject.role == DEFINES and subject.kind == "relation":
                facts.relation_kind[subject.name] = subject.relation_kind
                facts.creation.setdefault(subject.name, statement)
                if subject.parent is not None:
                    facts.partition_parent[subject.name] = subject.parent
                    facts.partition_bound[subject.name] = subject.bound
            if subject.role == ATTACH:
                facts.partition_parent[subject.child] = subject.name
                facts.partition_bound[subject.child] = subject.bound
            if subject.index is not None:
                facts.index_table[subject.index] = subject.name
            if subject.sequence is not None:
                facts.sequence_table[subject.sequence] = subject.name
            if subject.owner is not None:
                facts.sequence_table[subject.name] = subject.owner
            if subject.role == FOREIGN_KEY:
                facts.foreign_keys.add((subject.name, subject.constraint))
        return facts

    def root(self, name: Name) -> Name:
        """The table at the top of a partition tree (a table that is no partition is its own root)."""
        seen = {name}
        while name in self.partition_parent and self.partition_parent[name] not in seen:
            name = self.partition_parent[name]
            seen.add(name)
        return name

    def relation_of(self, subject: Subject) -> Name | None:
        """The table, view or partition a statement belongs to; None for a function, type or schema,
        and for a sequence no table owns."""
        if subject.kind == "relation":
            return subject.name
        if subject.kind == "index":
            return self.index_table.get(subject.name)
        if subject.kind == "sequence":
            return self.sequence_table.get(subject.name)
        return None

    def children(self, parent: Name) -> list[Name]:
        return [child for child, of in self.partition_parent.items() if of == parent]
