"""The strict switch of conftest.py: with ALICE_EDGAR_STRICT=1 (as .ci/run sets it) a test that would skip fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SKIPPING = '''
import pytest
nothing = pytest.importorskip("no_such_package_anywhere")

def test_never_runs():
    pass
'''
SKIPS_INSIDE = '''
import pytest

def test_without_its_data():
    pytest.skip("no corpus mirror")

def test_that_runs():
    pass
'''


def _pytest(folder: Path, strict: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ALICE_EDGAR_STRICT"}
    if strict:
        env["ALICE_EDGAR_STRICT"] = strict
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_strict_turns_every_skip_into_a_failure_and_still_runs_the_rest(tmp_path) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_module_skips.py").write_text(SKIPPING)
    (tmp_path / "test_one_skips.py").write_text(SKIPS_INSIDE)
    lax = _pytest(tmp_path, "")
    assert lax.returncode == 0 and "1 passed, 2 skipped" in lax.stdout
    assert "SKIPPED" in lax.stdout and "no corpus mirror" in lax.stdout  # the skip summary names each reason
    hard = _pytest(tmp_path, "1")
    assert hard.returncode == 1 and "1 failed, 1 passed, 1 error" in hard.stdout, hard.stdout[-2000:]
    assert "ALICE_EDGAR_STRICT=1 and this would have skipped: Skipped: no corpus mirror" in hard.stdout
    assert "no_such_package_anywhere" in hard.stdout
