"""The lectures as notebooks (notebooks/*.ipynb): each runs top to bottom with a kernel, what it shows is what the
current code prints, every equation of the lectures has its cell, and every exercise's solution runs.

A cell's output is compared with the one saved in the file unless the cell is tagged "varies" (numbers from training,
sampling or a float32 sum whose last digits depend on the machine's kernels); images are not compared.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
SOLUTIONS = sorted((FOLDER / "solutions").glob("*.py"))
LECTURES = {"lecture_a.ipynb": [f"A{i}" for i in range(1, 16)], "lecture_b.ipynb": [f"B{i}" for i in range(1, 17)]}


def shown(cell) -> str:
    """What a code cell shows as text: its printed lines and its result, in order (however the kernel cut the printed
    text into messages)."""
    out = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out.append(o["text"])
        elif o["output_type"] == "execute_result" and "text/plain" in o["data"]:
            out.append(o["data"]["text/plain"])
    return "".join(out)


def checked(cell) -> bool:
    return cell.cell_type == "code" and "varies" not in cell.metadata.get("tags", [])


@pytest.fixture(scope="module", params=[p.name for p in NOTEBOOKS])
def executed(request, minilm_folder, corpus_mirror):
    """(saved notebook, the same notebook run again from the top now)."""
    saved = nbformat.read(FOLDER / request.param, as_version=4)
    fresh = nbformat.read(FOLDER / request.param, as_version=4)
    env = dict(os.environ, TQDM_DISABLE="1")
    client = nbclient.NotebookClient(fresh, timeout=600, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(FOLDER)}})
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment (the corpus mirror, no progress bars)
    try:
        client.execute()  # CellExecutionError names the cell and its traceback
    finally:
        os.environ.clear()
        os.environ.update(old)
    return saved, fresh


def test_each_notebook_runs_and_shows_what_the_code_prints_now(executed):
    saved, fresh = executed
    pairs = [(a, b) for a, b in zip(saved.cells, fresh.cells) if checked(a)]
    assert pairs, "no cell to compare"
    for old, new in pairs:
        assert shown(new) == shown(old), f"the saved output of this cell is stale:\n{old.source}"
    assert all(cell.get("outputs") for cell in saved.cells if cell.cell_type == "code"), "saved without outputs"


def test_every_equation_of_the_lectures_has_its_cell():
    for name, equations in LECTURES.items():
        nb = nbformat.read(FOLDER / name, as_version=4)
        headings = " ".join(c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source)
        found = set(re.findall(r"\b([AB]\d+)\b", headings))
        assert not set(equations) - found, f"{name} has no cell for {sorted(set(equations) - found)}"
        # each heading is followed by a code cell that runs it
        for i, cell in enumerate(nb.cells[:-1]):
            if cell.cell_type == "markdown" and re.search(r"^## [AB]\d+", cell.source):
                assert nb.cells[i + 1].cell_type == "code", cell.source.splitlines()[0]


def test_the_equation_map_points_to_the_notebook_cells():
    table = (REPO / "docs" / "EQUATIONS.md").read_text(encoding="utf-8")
    for name, equations in LECTURES.items():
        for eq in equations:
            assert re.search(rf"^\| {eq} \|.*`notebooks/{name}` ", table, re.M), f"{eq}: no notebook cell in EQUATIONS.md"


def test_no_notebook_defines_a_library_function():
    """The notebook is the lecture, the library is the code: a `def` in a cell is at most a few lines of display."""
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for fn in re.findall(r"^def (\w+)", cell.source, re.M):
                    body = cell.source.split(f"def {fn}", 1)[1].split("\n\n", 1)[0]
                    assert body.count("\n") <= 6, f"{path.name}: {fn} is long enough to belong in the library"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_solution_runs(path, minilm_folder, corpus_mirror):
    spec = importlib.util.spec_from_file_location(f"solutions_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exercises = [getattr(module, n) for n in dir(module) if n.startswith("exercise_")]
    assert exercises
    for exercise in exercises:
        exercise()  # each asserts its own answer


def test_every_notebook_has_exercises_and_its_solutions():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert any(c.source.startswith("## Exercises") for c in nb.cells if c.cell_type == "markdown"), path.name
        assert (FOLDER / "solutions" / f"{path.stem}.py").is_file()
