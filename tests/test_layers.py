"""The house rules of imports, checked on every module so they stay true:

* floors, imports pointing down only: ``supervisor.py`` (and its private ``_supervision``)
  <- ``gpu/`` <- ``actors/`` <- ``transport/`` <- ``hive/``;
* no import cycle between files.

Imports are read from the source (the ``ast``), wherever they stand in a module, except inside
``if TYPE_CHECKING:``, which never runs. ``from package import name`` counts as importing
``package.name`` when that is a module, else the package's ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"supervisor": 1, "_supervision": 1, "gpu": 2, "actors": 3, "transport": 4, "hive": 5}


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    out = {"supervisor": root / "supervisor.py"}
    for package in FLOORS:
        folder = root / package
        if not folder.is_dir():
            continue
        for path in folder.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node outside ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                     else node.module for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in FLOORS)
    return found


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: {m for m in imports_of(path, modules) if m in modules} - {name}
            for name, path in modules.items()}


def floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def upward(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
                  for a, targets in edges.items() for b in targets if floor(b) > floor(a))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_imports_point_down_only() -> None:
    assert upward(graph(project_modules())) == []


def test_no_import_cycle_between_files() -> None:
    assert cycles(graph(project_modules())) == []


def private_reaches(edges: dict[str, set[str]]) -> list[str]:
    """Imports of ``_supervision`` from anywhere but ``supervisor.py`` and the package itself:
    the private package stays behind its one public face, as pykka's do."""
    return sorted(f"{a} imports {b}" for a, targets in edges.items() for b in targets
                  if b.split(".")[0] == "_supervision" and a != "supervisor"
                  and a.split(".")[0] != "_supervision")


def test_only_the_facade_imports_the_private_supervision_package() -> None:
    assert private_reaches(graph(project_modules())) == []
    assert private_reaches({"actors.a": {"_supervision.core"}}) == ["actors.a imports _supervision.core"]


@pytest.mark.parametrize(("edges", "expected_cycles", "expected_upward"), [
    ({"actors.a": {"actors.b"}, "actors.b": {"actors.a"}}, [["actors.a", "actors.b"]], []),
    ({"actors.a": {"transport.x"}, "transport.x": set()}, [], ["actors.a"]),
    ({"hive.a": {"transport.b"}, "transport.b": {"gpu.c"}, "gpu.c": set()}, [], []),
])
def test_the_checks_themselves_find_what_they_look_for(
        edges: dict[str, set[str]], expected_cycles: list[list[str]],
        expected_upward: list[str]) -> None:
    assert cycles(edges) == expected_cycles
    assert [line.split()[0] for line in upward(edges)] == expected_upward


def test_imports_inside_functions_are_seen(tmp_path: Path) -> None:
    module = tmp_path / "gpu" / "late.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from hive import config\n")
    (tmp_path / "hive").mkdir()
    (tmp_path / "hive" / "config.py").write_text("")
    modules = {"gpu.late": module, "hive.config": tmp_path / "hive" / "config.py"}
    assert imports_of(module, modules) == {"hive.config"}


def test_every_module_says_what_it_exports_and_defines_it() -> None:
    """``__all__`` in every module, naming only what the module itself defines: one import path
    per public name (``supervisor.py`` and ``gpu/__init__.py`` are the facades)."""
    facades = {"supervisor", "gpu"}
    problems = []
    for name, path in project_modules().items():
        tree = ast.parse(path.read_text())
        defined: set[str] = set()
        exported: list[str] | None = None
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        defined.add(target.id)
                        if target.id == "__all__" and node.value is not None:
                            exported = [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
        if exported is None:
            problems.append(f"{name}: no __all__")
        elif name not in facades and set(exported) - defined:
            problems.append(f"{name}: exports what it does not define: {sorted(set(exported) - defined)}")
    assert problems == []
