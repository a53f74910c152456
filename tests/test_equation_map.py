"""docs/EQUATIONS.md and docs/ARCHITECTURE.md name code and tests that exist: every `file.py:function` and every
`tests/file.py::test` they cite is there (a move or a rename that forgets the map fails here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "docs" / "EQUATIONS.md", REPO / "docs" / "ARCHITECTURE.md"]
CODE = re.compile(r"`((?:[a-z_]+/)+[a-z_]+\.py):([A-Za-z_][\w.]*)")  # `model/bert.py:BertClassifier.forward`
TEST = re.compile(r"`(tests/[a-z_]+\.py)::(test_\w+)`")
MORE_TESTS = re.compile(r"`(test_\w+)`")  # a further test of the row's file: `tests/x.py::test_a`, `test_b`


def defined_names(path: Path) -> set[str]:
    """Every function and class of a file, with methods as Class.method."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{n.name}" for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def missing(text: str) -> list[str]:
    wrong = []
    for file, name in CODE.findall(text):
        path = REPO / file
        if not path.is_file() or name.split("(")[0] not in defined_names(path):
            wrong.append(f"{file}:{name}")
    for line in text.splitlines():
        files = TEST.findall(line)
        for file, name in files:
            if not (REPO / file).is_file() or name not in defined_names(REPO / file):
                wrong.append(f"{file}::{name}")
        if files:  # the bare test names of a row belong to one of the files it names
            known = set().union(*(defined_names(REPO / f) for f, _ in files if (REPO / f).is_file()))
            wrong += [n for n in MORE_TESTS.findall(line) if n not in known]
    return wrong


def test_every_function_and_test_the_docs_cite_exists():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        assert CODE.search(text) or doc.name != "EQUATIONS.md"
        assert not missing(text), (doc.name, missing(text))


def test_a_cited_name_that_is_gone_is_caught():
    assert missing("`model/bert.py:BertClassifier.forward` `tests/test_layers.py::test_dropout_mask_rate_is_p`") == []
    assert missing("`model/bert.py:Bert.no_such` | `tests/test_layers.py::test_gone`, `test_also_gone`") == \
        ["model/bert.py:Bert.no_such", "tests/test_layers.py::test_gone", "test_also_gone"]
