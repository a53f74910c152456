"""Ctrl-C, at any moment of a program: "interrupted" and exit code 130, with what was saved said before.

A program meets a Ctrl-C in one of three phases, and each has its own handler:

    importing  `exit_while_importing`: torch takes seconds to import, and nothing is written yet,
               so the program ends at once (no traceback from inside a library's import)
    set-up     `run_program` (plumbing/cli.py) installs `note_and_raise`: KeyboardInterrupt, as Python
               does by default, but the request is also noted, so that a library that catches the
               exception (a `__del__`, a callback) cannot lose it
    the loop   `StopRequest`: the first Ctrl-C stops at the next step boundary, with a checkpoint

`stop_was_asked()` is what `run_program` reads at the end: a program that was asked to stop exits
with 130 even when its loop had reached its last step anyway. This module imports only the standard
library, so that a program can install the first handler before it imports anything heavy.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

_asked: threading.Event | None = None  # while a program runs (ProgramSignals): set by every handler below


def stop_was_asked() -> bool:
    return _asked is not None and _asked.is_set()


def _note() -> None:
    if _asked is not None:
        _asked.set()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # Python runs handlers there only


def exit_while_importing() -> None:
    """Until `run_program` takes over: a Ctrl-C prints "interrupted" and ends the process with 130 at once."""
    def now(signum, frame) -> None:
        print("interrupted", file=sys.stderr, flush=True)
        os._exit(130)  # nothing is written while the libraries load, so nothing needs cleaning up

    if _in_main_thread():
        signal.signal(signal.SIGINT, now)


def note_and_raise(signum, frame) -> None:
    """The set-up's handler: KeyboardInterrupt, and a note of it that no `except` can swallow."""
    _note()
    raise KeyboardInterrupt


class ProgramSignals:
    """`with ProgramSignals():` around a whole program: `note_and_raise`, a note kept for this program only."""

    def __enter__(self) -> "ProgramSignals":
        global _asked
        _asked = threading.Event()
        self.previous = signal.signal(signal.SIGINT, note_and_raise) if _in_main_thread() else None
        return self

    def __exit__(self, *exc) -> None:
        global _asked
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        _asked = None


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop at the next step boundary; a second Ctrl-C stops at once.

    Only a second SIGINT stops at once: torchrun answers a Ctrl-C by sending SIGTERM to every rank,
    which already got the terminal's SIGINT, and they must still finish their step together.

        with StopRequest() as stop:
            for step in ...:
                ...one step...
                if stop.requested:
                    save; break

    A step is never cut in half, so what is saved is always one consistent step. A Ctrl-C noted
    during the set-up (whose KeyboardInterrupt something swallowed) stops the program here, before
    the first step.
    """

    def __enter__(self) -> "StopRequest":
        if stop_was_asked():
            raise KeyboardInterrupt
        self.requested, self.interrupts = False, 0
        self.active = _in_main_thread()
        if self.active:
            self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame) -> None:
        _note()
        self.interrupts += signum == signal.SIGINT
        if self.interrupts > 1:  # the second Ctrl-C: now
            raise KeyboardInterrupt
        if self.requested:
            return
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.active:
            for s, handler in self.previous.items():
                signal.signal(s, handler)
