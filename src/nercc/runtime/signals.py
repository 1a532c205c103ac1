"""SIGTERM and SIGINT during a task: :class:`Interrupted`, raised at once in the task's process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Interrupted", "is_sigterm_exception", "signals_interrupt"]


class Interrupted(BaseException):
    """A task stopped by a signal: SIGTERM (a scheduler's preemption, ``timeout``, ``kill``) or
    SIGINT (Ctrl-C). Like ``KeyboardInterrupt`` it is no ``Exception``, so that no ``except
    Exception`` of the task swallows it; the process then exits with ``128 + signal``.

    Parameters
    ----------
    signum : int
        The signal's number.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's status of a process ended by the signal: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.signum,))


SIGNALS = (signal.SIGTERM, signal.SIGINT)


def is_sigterm_exception(error: SystemExit) -> bool:
    exceptions = sys.modules.get("pytorch_lightning.utilities.exceptions")
    return exceptions is not None and isinstance(error, exceptions.SIGTERMException)
    """Whether ``error`` is Lightning's ``SIGTERMException`` (raised at the end of a step)."""


@contextlib.contextmanager
def signals_interrupt() -> Iterator[list[int]]:
    """Turn SIGTERM and SIGINT into :class:`Interrupted` while the task runs (the main thread
    only: signal handlers cannot be set elsewhere). Raising at once, rather than setting a flag,
    also stops a task outside Lightning's loops, and Lightning passes the exception on after its
    own clean-up (a plain ``KeyboardInterrupt`` it would turn into ``sys.exit(1)``).

    The handler acts once: a second signal during the clean-up ends the process as by default
    (also when Lightning has put the handler back meanwhile). A child process forked while it is
    installed (DataLoader workers) ends by the default action too, so that only the task's own
    process unwinds. The previous handlers come back afterwards.

    Yields the list of signals received (empty, or one): an exception raised while Python runs
    a finaliser or a weakref callback is printed and dropped, so the caller checks it too.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    owner = os.getpid()

    def interrupt(signum: int, frame: Any) -> None:
        if received or os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
