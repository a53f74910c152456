"""plumbing/allocator.py: with freed memory kept, the steps of a training loop after the first few touch no new pages.

Each run is a fresh Python (the suite's own process has it set already: plumbing/cli.py:run_program)."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

PAGES_OF_AN_ACTIVATION = (4096 * 4096 * 4) // 4096  # a (4096, 4096) float32 tensor: 64 MiB, above glibc's 32 MiB

FAULTS_PER_STEP = """
import resource, sys, torch
from plumbing.allocator import keep_freed_memory
if sys.argv[1] == "kept":
    keep_freed_memory()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 256))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
x = torch.randn(4096, 256)
def faults_of_a_step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model(x).square().mean().backward()  # two (4096, 4096) activations and their gradients
    optimizer.step()
    optimizer.zero_grad()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(*[faults_of_a_step() for _ in range(6)])
"""


def faults_per_step(mode: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)  # the repository root: plumbing/ importable
    return [int(n) for n in out.stdout.split()]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_training_steps_reuse_the_freed_pages():
    as_glibc_is = faults_per_step("as glibc is")
    kept = faults_per_step("kept")
    assert min(as_glibc_is[2:]) > PAGES_OF_AN_ACTIVATION, as_glibc_is  # fresh pages for every large tensor, every step
    assert min(kept[2:]) < PAGES_OF_AN_ACTIVATION // 16, kept  # the heap grew to hold a step, then serves it again
