"""Ctrl-C at a step boundary.

The first SIGINT sets a flag: the loop stops after the current step and saves a
checkpoint. A second one stops at once (``KeyboardInterrupt``), except inside
:meth:`StopFlag.shielded` (the few lines that commit a step: optimizer, scheduler and
progress), where it is held until the commit is complete. So an interrupted run is always
either before a step's commit (nothing of the step applied) or after it (all of it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class StopFlag:
    """What Ctrl-C asked for."""

    def __init__(self) -> None:
        self.requested = False
        """The first Ctrl-C: stop after this step."""
        self._shield = 0
        self._pending = False

    def interrupt(self) -> None:
        """The SIGINT handler's work (callable from tests)."""
        if not self.requested:
            self.requested = True
        elif self._shield:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """A block a second Ctrl-C does not cut in half (it is raised at the end)."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1
        if not self._shield and self._pending:
            self._pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[StopFlag]:
    """Within the block, Ctrl-C asks the loop to stop after the current step."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        flag.interrupt()

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
