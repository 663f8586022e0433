"""Stage 1: the declared files (schema/, partitions/, views/, policies/) -> desired SQL, in load order,
each statement admitted (admission.py) before anything is built from it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
from pathlib import Path

from ..config import Config
from ..errors import DeclaredStateError
from ..sqltext import jinja_environment
from .admission import AdmittedStatement, admit
from .partition_specs import PartitionSpec, read_spec, render_spec
from .renames import ColumnUsing, Rename, renames_in, usings_in

# Load order: tables first, then their partitions, then views over them, then the policies on all.
FOLDERS = ("schema", "partitions", "views", "policies")
REQUIRED_FOLDER = "schema"


@dataclasses.dataclass(frozen=True)
class SqlSource:
    """One unit of desired SQL, remembering the file it came from for file:line errors."""

    display: str  # path relative to the project, as shown to the user
    text: str | None  # the SQL as read or rendered; None for a partition spec, rendered when first needed
    rendered: bool  # True when the SQL was produced by a template, so lines are of the rendered text
    spec: PartitionSpec | None = None  # for partitions/*.yaml: checked against the parent before loading
    as_of: dt.date | None = None  # for partitions/*.yaml: the date that places the spec's window

    @functools.cached_property
    def sql(self) -> str:
        """The SQL. A spec is rendered on first use: a cached drift, which needs only the content key,
        does not load jinja2."""
        return self.text if self.text is not None else render_spec(self.spec, self.as_of)

    @property
    def content_key(self) -> str:
        """What its SQL is made from: the text, or for a spec its settings (the date and the engine's own
        template are keyed beside it: DesiredState.content_hash and desired_cache.key_inputs)."""
        if self.text is not None:
            return self.text
        return repr([(f.name, getattr(self.spec, f.name)) for f in dataclasses.fields(self.spec) if f.name != "file"])

    @property
    def label(self) -> str:
        """How errors name it: the file, and whether lines count in its rendering."""
        return f"{self.display}{' (rendered)' if self.rendered else ''}"

    @functools.cached_property
    def statements(self) -> tuple[AdmittedStatement, ...]:
        """Its statements, each admitted; raises on the first that is refused."""
        return admit(self.sql, self.label)


@dataclasses.dataclass(frozen=True)
class DesiredState:
    sources: tuple[SqlSource, ...]
    as_of: dt.date

    @property
    def partition_specs(self) -> tuple[PartitionSpec, ...]:
        return tuple(s.spec for s in self.sources if s.spec is not None)

    def admit(self) -> None:
        """Admit every declared statement (admission.py), before anything is built from them: raises on
        the first refused. A desired state found in the cache needs no build, so no admission: its
        content was admitted when it was built."""
        for source in self.sources:
            source.statements  # noqa: B018 (computed and kept)

    def renames(self) -> tuple[Rename, ...]:
        """The rename directives of the declared files (renames.py), in load order."""
        return tuple(rename for source in self.sources if source.spec is None
                     for rename in renames_in(source.sql, source.label))

    def usings(self) -> tuple[ColumnUsing, ...]:
        """How columns whose type a plan changes convert their values (renames.py), in load order."""
        return tuple(using for source in self.sources if source.spec is None
                     for using in usings_in(source.sql, source.label))

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256(self.as_of.isoformat().encode())
        for source in self.sources:
            digest.update(source.display.encode() + b"\0" + source.content_key.encode() + b"\0")
        return digest.hexdigest()


def _render_template(path: Path, display: str, project_dir: Path, variables: dict) -> str:
    import jinja2  # only a project with .sql.j2 files loads it

    env = jinja_environment(str(project_dir))
    try:
        template = env.from_string(path.read_text(encoding="utf-8"))
        return template.render(vars=variables, **variables)
    except jinja2.TemplateSyntaxError as exc:
        raise DeclaredStateError(f"{display}:{exc.lineno}: template error: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise DeclaredStateError(f"{display}: template error: {exc.message} (define it under vars: in reconcile.yaml)") from exc
    except jinja2.TemplateError as exc:  # SecurityError: the sandbox refused an attribute or call
        raise DeclaredStateError(f"{display}: template error: {exc}") from exc


def not_utf8(path: Path, display: str) -> DeclaredStateError:
    """The error for a declared file that is not UTF-8, naming the line of its first byte that is not
    and where in the line (an editor's column may differ after other multi-byte characters)."""
    try:
        data = path.read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        return DeclaredStateError(f"{display}:{line}: not UTF-8: byte 0x{data[exc.start]:02x} at position "
                                  f"{exc.start - line_start + 1} of the line; save the file as UTF-8")
    except OSError:
        pass
    # The file itself is UTF-8: what is not is a file its template includes.
    return DeclaredStateError(f"{display}: not UTF-8 text (in a file it includes); save it as UTF-8")


EXTERNAL_FOLDER = "external"


def read_external_definition(config: Config, schema: str) -> SqlSource | None:
    """external/<schema>.sql: the definition of an external schema that the target lacks (a local
    database without Supabase's auth schema, say). Untrusted like every declared file: admitted
    statement by statement before it runs."""
    path = config.project_dir / EXTERNAL_FOLDER / f"{schema}.sql"
    if not path.is_file():
        return None
    display = str(path.relative_to(config.project_dir))
    if path.is_symlink() or not path.resolve().is_relative_to(config.project_dir):
        raise DeclaredStateError(f"{display}: a link; external definitions must be files in the project")
    try:
        return SqlSource(display, path.read_text(encoding="utf-8"), rendered=False)
    except UnicodeDecodeError as exc:
        raise not_utf8(path, display) from exc
    except OSError as exc:
        raise DeclaredStateError(f"{display}: cannot read: {exc.strerror}") from exc


def load_desired_state(config: Config, as_of: dt.date) -> DesiredState:
    project = config.project_dir
    if not (project / REQUIRED_FOLDER).is_dir():
        raise DeclaredStateError(
            f"{project / REQUIRED_FOLDER}: folder not found; a project declares its tables in {REQUIRED_FOLDER}/ "
            f"(is --project pointing at the right folder?)"
        )
    sources = read_sources(config, as_of)
    if not sources:
        raise DeclaredStateError(f"{project}: no declared .sql, .sql.j2 or partition files found")
    return DesiredState(tuple(sources), as_of)


def read_sources(config: Config, as_of: dt.date | None) -> list[SqlSource]:
    """The declared files in load order, rendered. Without `as_of`, partition specs are left out: they
    render only partitions of tables declared in schema/, and need a date to place their window."""
    project = config.project_dir
    sources: list[SqlSource] = []
    for folder in FOLDERS:
        directory = project / folder
        if not directory.is_dir():
            continue
        for path in sorted(p for p in directory.iterdir() if p.is_file()):
            display = str(path.relative_to(project))
            name = path.name
            try:
                if folder == "partitions" and name.endswith((".yaml", ".yml")):
                    if as_of is not None:
                        spec = read_spec(path, display)
                        sources.append(SqlSource(display, None, rendered=True, spec=spec, as_of=as_of))
                elif name.endswith(".sql.j2"):
                    sources.append(SqlSource(display, _render_template(path, display, project, config.vars), rendered=True))
                elif name.endswith(".sql"):
                    sources.append(SqlSource(display, path.read_text(encoding="utf-8"), rendered=False))
            except UnicodeDecodeError as exc:
                raise not_utf8(path, display) from exc
            except OSError as exc:
                raise DeclaredStateError(f"{display}: cannot read: {exc.strerror}") from exc
    return sources
