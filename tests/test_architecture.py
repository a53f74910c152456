"""The rooms of docs/ARCHITECTURE.md, read from the imports themselves: they point one way, with no circle."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# From the bottom up: a room may import the rooms before it, never one after it.
ROOMS = ["weights", "model", "tokenizer_bridge", "data", "train", "eval", "plumbing", "bench", "scripts"]
LECTURE_ROOMS = {"model", "tokenizer_bridge", "data", "train", "eval"}


def project_imports(path: Path) -> set[str]:
    """The project modules that a file imports (at any depth of the file, type-checking blocks included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
            found.update(submodules or {node.module})  # `from plumbing import cli` is an import of plumbing.cli
    return {name for name in found if name.split(".")[0] in ROOMS and module_file(name) is not None}


def module_file(name: str) -> Path | None:
    path = REPO.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def modules() -> dict[str, set[str]]:
    """module name -> the project modules it imports, for every file of every room."""
    graph = {}
    for room in ROOMS:
        for path in sorted((REPO / room).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            graph[name] = project_imports(path) - {name}
    return graph


def test_every_import_points_down_the_rooms():
    wrong = [f"{m} imports {i}" for m, imports in modules().items() for i in imports
             if ROOMS.index(i.split(".")[0]) > ROOMS.index(m.split(".")[0])]
    assert not wrong, wrong


def test_no_lecture_file_imports_the_plumbing_and_no_program_imports_another():
    graph = modules()
    lecture = [f"{m} imports {i}" for m, imports in graph.items() if m.split(".")[0] in LECTURE_ROOMS
               for i in imports if i.split(".")[0] in ("plumbing", "scripts", "bench")]
    programs = [f"{m} imports {i}" for m, imports in graph.items() if m.startswith("scripts.")
                for i in imports if i.startswith("scripts")]
    assert not lecture and not programs, lecture + programs


def test_no_circle_between_modules():
    graph, done, path = modules(), set(), []

    def visit(m: str) -> None:
        if m in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for i in graph.get(m, ()):
            visit(i.removesuffix(".__init__"))
        path.pop()
        done.add(m)

    for m in graph:
        visit(m)


def test_the_checks_above_can_fail(tmp_path, monkeypatch):
    """A lecture file that imports the plumbing, and a circle, are both caught."""
    for room in ROOMS:
        (tmp_path / room).mkdir()
    (tmp_path / "train" / "bad.py").write_text("from plumbing.runs import Run\n")
    (tmp_path / "plumbing" / "runs.py").write_text("import train.bad\n")
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    graph = modules()
    assert graph["train.bad"] == {"plumbing.runs"} and graph["plumbing.runs"] == {"train.bad"}
    for test in (test_every_import_points_down_the_rooms, test_no_lecture_file_imports_the_plumbing_and_no_program_imports_another,
                 test_no_circle_between_modules):
        try:
            test()
        except AssertionError:
            continue
        raise AssertionError(f"{test.__name__} passed on a broken tree")
