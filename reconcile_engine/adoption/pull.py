"""Stage A (pull), the stages in order: dump -> definitions -> facts -> partition specs -> layout ->
files written. api.pull calls this with the resolved target."""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..config import Config
from .dump import dump_schema, extensions_in
from .facts import DumpFacts
from .layout import lay_out
from .partition_inference import infer_specs
from .statements import definitions
from .writer import Written, write_files


@dataclasses.dataclass(frozen=True)
class Pulled:
    files: Written
    extensions: tuple[str, ...]  # installed in the managed schemas (pull writes no CREATE EXTENSION)
    notes: tuple[str, ...]


def pull_schema(config: Config, url: str, as_of: dt.date, force: bool) -> Pulled:
    found = definitions(dump_schema(config, url))
    extensions = tuple(sorted(set(found.extensions) | set(extensions_in(config, url))))
    facts = DumpFacts.read(found.statements)
    specs, spec_notes = infer_specs(found.statements, facts, as_of)
    files, ignored, layout_notes = lay_out(found.statements, facts, specs, config.ignore)
    notes = [*found.notes, *spec_notes, *layout_notes]
    if ignored:
        notes.append(f"left out {ignored} statement(s) on objects that ignore: in reconcile.yaml matches")
    if not files:
        notes.append(f"the managed schemas ({', '.join(config.managed_schemas)}) hold nothing to declare")
    return Pulled(write_files(config.project_dir, files, force), extensions, tuple(notes))
