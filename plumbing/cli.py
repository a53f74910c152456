"""How every program ends: a result, or one clear line on standard error and an exit code.

    0    done
    1    the machine or the files are not as needed (missing weights, offline, disk full, diverged)
    2    bad input (a flag out of range, an unknown author, a text that is not a book, a broken config)
    130  stopped by Ctrl-C, at any moment (what was saved is said before; plumbing/interrupt.py)

No traceback for any of these: they are the user's to fix, and the message says how.
"""

from __future__ import annotations

import sys
from typing import Callable

from plumbing.allocator import keep_freed_memory
from plumbing.atomic import is_disk_full
from plumbing.interrupt import ProgramSignals, stop_was_asked
from train.optim import Diverged


def run_program(program: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run `program(argv)` and turn its expected failures into a message and an exit code.

    Before it runs, freed memory is kept for the next tensor (plumbing/allocator.py: SmolLM2's training
    step without it spends a fifth of its time on pages the kernel hands out again)."""
    keep_freed_memory()
    try:
        with ProgramSignals():
            code = _exit_code(program, argv)
            if code == 0 and stop_was_asked():  # a Ctrl-C whose exception a library swallowed, or in the last step
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


def _exit_code(program: Callable[[list[str] | None], object], argv: list[str] | None) -> int:
    """0, or the exit code and the one line of an expected failure (KeyboardInterrupt goes through)."""
    try:
        program(argv)
    except ValueError as err:  # bad input: ConfigError, CheckpointError, corpus errors, ...
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, Diverged) as err:  # FileNotFoundError, ConnectionError, disk full, a diverged run
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a library's own error for a full disk (safetensors reports "os error 28")
        if not is_disk_full(err):
            raise
        print(f"error: no space left on the disk ({err}); what was being written was removed", file=sys.stderr)
        return 1
    return 0
