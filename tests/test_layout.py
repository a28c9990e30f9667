"""The shape of the code: which package may import what, how long modules and functions get, who runs SQL.

Each check reads the source with ``ast`` and names every offender, so a failure says where to look.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_MARK = "# long:"
EXECUTE_NAMES = {"execute", "executemany", "executescript", "_execute", "_executemany", "_executescript"}


def module_name(path: Path) -> str:
    """Dotted module name of a file under ROOT (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> list[Path]:
    """Every Python file of the library, the CLI and the app."""
    return sorted([*(ROOT / "carmatch").rglob("*.py"), *(ROOT / "admin").rglob("*.py"), ROOT / "app.py"])


def library_files(*, except_under: str | None = None) -> list[Path]:
    """Python files of ``carmatch``, leaving out one sub-package when asked."""
    skip = ROOT / "carmatch" / except_under if except_under else None
    return [p for p in sorted((ROOT / "carmatch").rglob("*.py")) if skip is None or not p.is_relative_to(skip)]


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def imported_names(path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names an import statement brings in (``from a import b`` gives ``a.b``, which may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package.pop()
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]


def all_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported name) for every import in the file, at any depth."""
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in imported_names(path, node):
                yield node.lineno, name


def is_type_checking(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Imports that run when the module is imported: module level, inside if/try, not under TYPE_CHECKING."""
    pending: list[ast.stmt] = list(parsed(path).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in imported_names(path, node):
                yield node.lineno, name
        elif isinstance(node, ast.If) and not is_type_checking(node):
            pending.extend([*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                pending.extend(handler.body)


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_library_outside_ui_never_imports_gradio() -> None:
    offenders = [
        f"{where(path, line)} imports {name}"
        for path in library_files(except_under="ui")
        for line, name in all_imports(path)
        if within(name, "gradio", "gradio_client")
    ]
    assert not offenders, "carmatch outside ui/ must work without Gradio:\n" + "\n".join(offenders)


def upward(path: Path) -> tuple[str, ...]:
    """What a library module may not import: the CLI and the app, and the UI unless it is UI itself."""
    return ("admin", "app") if path.is_relative_to(ROOT / "carmatch" / "ui") else ("carmatch.ui", "admin", "app")


def test_library_never_imports_upward() -> None:
    """Job packages (catalog, search, captions, dataset, training) and top-level modules never import the UI."""
    offenders = [
        f"{where(path, line)} imports {name}"
        for path in library_files()
        for line, name in all_imports(path)
        if within(name, *upward(path))
    ]
    assert not offenders, "the library imports only downward:\n" + "\n".join(offenders)


def test_no_module_over_400_lines() -> None:
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in project_files()}
    offenders = [f"{path.relative_to(ROOT)}: {n} lines" for path, n in sizes.items() if n > MAX_MODULE_LINES]
    assert not offenders, f"split modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def has_long_reason(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """True when the def line, or the line before it (or before its decorators), has ``# long: <reason>``."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    candidates = [lines[node.lineno - 1], lines[node.lineno - 2] if node.lineno > 1 else ""]
    candidates.append(lines[first - 2] if first > 1 else "")
    for text in candidates:
        comment = text[text.find("#") :] if "#" in text else ""
        if comment.startswith(LONG_MARK) and comment[len(LONG_MARK) :].strip():
            return True
    return False


def long_functions(path: Path) -> Iterator[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not has_long_reason(lines, node):
                yield f"{where(path, node.lineno)} {node.name}: {length} lines"


def test_no_function_over_60_lines_without_a_written_reason() -> None:
    offenders = [entry for path in project_files() for entry in long_functions(path)]
    assert not offenders, (
        f"split functions over {MAX_FUNCTION_LINES} lines, or say why on the def line "
        f"or the line above it ({LONG_MARK} <reason>):\n" + "\n".join(offenders)
    )


@pytest.mark.parametrize(
    "source,excused",
    [
        ("def f():  # long: one table of cases\n    pass\n", True),
        ("# long: one table of cases\n@decorate\ndef f():\n    pass\n", True),
        ("@decorate\n# long: one table of cases\ndef f():\n    pass\n", True),
        ("# long:\ndef f():\n    pass\n", False),
        ("# this is long: really\ndef f():\n    pass\n", False),
        ("def f():\n    pass\n", False),
    ],
)
def test_a_long_function_is_excused_only_by_a_written_reason(source: str, excused: bool) -> None:
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef))
    assert has_long_reason(source.splitlines(), node) == excused


def runtime_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Imports that can ever run: at any depth (inside functions too), not under TYPE_CHECKING."""
    pending: list[ast.AST] = [parsed(path)]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and is_type_checking(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in imported_names(path, node):
                yield node.lineno, name
        pending.extend(ast.iter_child_nodes(node))


def import_graph(*, deferred: bool = True) -> dict[str, set[str]]:
    """carmatch module -> the carmatch modules it imports; ``deferred`` counts imports inside functions too."""
    files = {module_name(path): path for path in library_files()}
    reader = runtime_imports if deferred else top_level_imports
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = {target for _, target in reader(path) if target in files}
        graph[name] = targets - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path back to its start) for every strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_through(graph, group) for group in groups]


def cycle_through(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, staying inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    return sorted(group)


def test_finding_cycles_reports_the_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_carmatch_modules() -> None:
    """No cycle, not even through an import deferred into a function (a cycle hidden, not removed)."""
    graph = import_graph()
    assert "carmatch.config" in graph["carmatch.runtime"]  # the graph sees real imports
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_deferred_imports_count_and_type_checking_ones_do_not(tmp_path: Path) -> None:
    source = tmp_path / "carmatch" / "x.py"
    source.parent.mkdir()
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import carmatch.hidden\n"
        "def f():\n    import carmatch.deferred\n",
        encoding="utf-8",
    )
    names = {name for _, name in runtime_imports(source)}
    assert "carmatch.deferred" in names and "carmatch.hidden" not in names


# Which job package may import which (top-level modules such as config, errors, runtime are shared by all).
# Each package's __init__ docstring says the same in words; the layering keeps the import graph acyclic.
MAY_IMPORT: dict[str, set[str]] = {
    "catalog": set(),
    "space": {"catalog"},
    "embedding": {"space"},
    "stores": {"catalog", "embedding"},
    "captions": {"catalog"},
    "dataset": {"catalog", "captions", "space"},
    "ingest": {"catalog", "embedding", "stores", "dataset"},
    "search": {"catalog", "embedding", "stores"},
    "training": {"catalog", "dataset", "embedding", "ingest", "space"},
    "cloud": {"catalog", "training"},
    "ui": {"catalog", "captions", "dataset", "embedding", "ingest", "search", "stores", "space", "training", "cloud"},
}


def job_packages() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "carmatch").glob("*/__init__.py"))


def test_every_job_package_says_what_it_is_for_and_what_it_may_import() -> None:
    missing = []
    for folder in job_packages():
        doc = ast.get_docstring(parsed(folder / "__init__.py")) or ""
        if folder.name not in MAY_IMPORT or "may import" not in doc.lower():
            missing.append(folder.name)
    assert not missing, "each package's __init__ docstring says what it may import (and MAY_IMPORT lists it): " + str(
        missing
    )


def test_job_packages_import_only_what_their_layer_allows() -> None:
    offenders = []
    for folder in job_packages():
        for path in sorted(folder.rglob("*.py")):
            for line, name in runtime_imports(path):
                parts = name.split(".")
                if len(parts) < 2 or parts[0] != "carmatch" or not (ROOT / "carmatch" / parts[1]).is_dir():
                    continue
                if parts[1] != folder.name and parts[1] not in MAY_IMPORT[folder.name]:
                    offenders.append(f"{where(path, line)} imports {name}")
    assert not offenders, "a job package imports outside its layer (tests/test_layout.py MAY_IMPORT):\n" + "\n".join(
        offenders
    )


def test_relative_imports_resolve_to_absolute_names() -> None:
    path = ROOT / "carmatch" / "stores" / "index.py"
    node = ast.parse("from ..catalog import Catalog").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert imported_names(path, node) == ["carmatch.catalog", "carmatch.catalog.Catalog"]


def test_sql_runs_only_in_the_catalog() -> None:
    outside = [p for p in project_files() if not p.is_relative_to(ROOT / "carmatch" / "catalog")]
    offenders = [
        f"{where(path, node.lineno)} calls .{node.func.attr}()"
        for path in outside
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EXECUTE_NAMES
    ]
    assert not offenders, "every SQL statement lives in carmatch/catalog/:\n" + "\n".join(offenders)


def test_tests_reach_no_private_attributes() -> None:
    """Tests use what a caller can use: no ``obj._name`` (a private name would pin the implementation)."""
    offenders = [
        where(path, node.lineno) + f" .{node.attr}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
    ]
    assert not offenders, "use public behaviour instead:\n" + "\n".join(offenders)
