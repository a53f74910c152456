"""Waiting for a program in another process to reach a state (a line in a file, a step in its metrics).

    wait_for(lambda: metrics.read_text().count('"train"') >= 2, proc, "two training steps")

The wait is for the state, checked every few milliseconds: a busy machine makes it longer, never
wrong. It fails at once, with the program's exit code, if the program ends first; the limit of
`SAFETY_S` only keeps a hung program from hanging the suite.
"""

from __future__ import annotations

import subprocess
import time
from typing import Callable

SAFETY_S = 600


def wait_for(state: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
    """Return once `state()` is true; AssertionError if `proc` ended before (or after SAFETY_S)."""
    limit = time.monotonic() + SAFETY_S
    while not _holds(state):
        assert proc.poll() is None, f"the program ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < limit, f"no {what} after {SAFETY_S} s"
        time.sleep(0.01)


def _holds(state: Callable[[], bool]) -> bool:
    try:
        return bool(state())
    except FileNotFoundError:  # the file that shows the state is not written yet
        return False
