"""Stage 1 (declared files): hand-written data steps (`plan --data-before/--data-after`), read into
statements that the plan runs before or after its generated DDL."""

from __future__ import annotations

from pathlib import Path

from pglast import parser as pg_parser

from ..config import Config
from ..diff.operations import Operation
from ..diff.statement_facts import operation
from ..errors import DeclaredStateError
from .files import not_utf8


def read_data_steps(paths, config: Config, where: str) -> list[Operation]:
    """The statements of each file (a jsonb_set UPDATE, say), marked as data steps `where` ("before
    the schema changes" or "after the schema changes"), with the file named."""
    steps = []
    for path in paths or ():
        display = str(path)
        try:
            text = Path(config.project_dir, path).read_text(encoding="utf-8")
            slices = pg_parser.split(text, with_parser=True, only_slices=True)
        except OSError as exc:
            raise DeclaredStateError(f"{display}: cannot read the data step: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise not_utf8(Path(config.project_dir, path), display) from exc
        except pg_parser.ParseError as exc:
            line = text.count("\n", 0, exc.args[1]) + 1 if len(exc.args) > 1 else "?"
            raise DeclaredStateError(f"{display}:{line}: {exc.args[0]}") from exc
        # Each runs on its own, outside the DDL's transaction, in batches (runner.run_in_batches).
        steps += [operation(text[piece].strip(), f"data ({where}, from {display})", online_step=True,
                            batch_rows=config.batch_rows) for piece in slices]
    return steps
