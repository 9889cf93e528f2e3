"""Stopping long work on request: Ctrl-C, and a batch system's SIGTERM or SIGUSR1.

Slurm and Kubernetes end a job with SIGTERM and kill it a grace period later (Slurm's
``--signal`` can send SIGUSR1 before the time limit). Inside ``on_request``, these signals are
noted rather than ending the process; ``simulate``, ``generate`` and ``train`` look at the note
where their work is committed (a batch of events appended, a training step ended), commit what
they hold, and raise ``Stopped``. The command line exits with ``REQUEUE`` for a batch system's
signal, which the recipes in ``deploy/`` treat as "run again with --resume", and 130 for Ctrl-C.
A second Ctrl-C raises ``KeyboardInterrupt`` at once, for work that does not reach a commit point.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from caloforge.errors import CaloforgeError

__all__ = ["REQUEUE", "SIGNALS", "Stopped", "on_request", "requested", "signal_name"]

REQUEUE = 75
"""Exit status of a command stopped by SIGTERM or SIGUSR1 with its work committed (sysexits'
EX_TEMPFAIL: try again later)."""

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)

_noted: list[int] = []
_depth = 0


class Stopped(CaloforgeError):
    """Long work stopped on request, what was done kept; ``--resume`` continues it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    @classmethod
    def keeping(cls, signum: int, kept: str) -> Stopped:
        """``stopped by SIGTERM: {kept}; rerun with --resume to continue``."""
        return cls(
            f"stopped by {signal_name(signum)}: {kept}; rerun with --resume to continue", signum
        )

    @property
    def exit_status(self) -> int:
        return 130 if self.signum == signal.SIGINT else REQUEUE


def _note(signum: int, frame) -> None:
    if _noted and signum == signal.SIGINT:
        raise KeyboardInterrupt
    _noted.append(signum)


@contextmanager
def on_request() -> Iterator[None]:
    """Within, ``SIGNALS`` are noted for ``requested`` instead of ending the process.

    Outside the main thread (where Python cannot set handlers) it does nothing. Nested uses share
    the outermost's note.
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _note) for s in SIGNALS}
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for s, handler in previous.items():
            signal.signal(s, handler)
        if _depth == 0:
            _noted.clear()


def requested() -> int | None:
    """The first signal noted since the outermost ``on_request`` began, or None."""
    return _noted[0] if _noted else None


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, ``Ctrl-C`` for SIGINT."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
