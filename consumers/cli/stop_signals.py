"""SIGTERM / SIGINT for a long-running command from its first line: clean while starting and while running.

A service command installs :class:`StopSignals` before it imports torch or loads the model, so an
orchestrator's SIGTERM in the first seconds (image pulled, pod rescheduled) does not kill the process
with −15 and a traceback:

* **while starting** (imports, model loading, topic creation) the first signal raises
  :class:`StopRequested` in the main thread; the command catches it and exits 0: nothing was consumed,
  so there is nothing to commit;
* **once running** (:meth:`StopSignals.running`) the first signal only sets the stop event: the worker
  finishes the batch in hand, commits and returns (exit 0);
* a **second** signal, in either phase, gets the default action (the process dies at once).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any, Self

__all__ = ["StopRequested", "StopSignals"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(BaseException):
    """SIGTERM/SIGINT arrived before the service started: unwind and exit 0.

    A BaseException, so that no ``except Exception`` in loading code swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} while starting")
        self.signum = signum


class StopSignals:
    """Context manager: handlers installed on enter (main thread only), the previous ones put back on exit."""

    def __init__(self) -> None:
        self._stop: threading.Event | None = None
        self._previous: dict[int, Any] = {}
        self.received: int | None = None

    def __enter__(self) -> Self:
        for sig in _SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        return self

    def running(self, stop: threading.Event) -> None:
        """From now on a signal sets ``stop`` instead of raising (set at once if one came already)."""
        self._stop = stop
        if self.received is not None:
            stop.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        self.received = signum
        signal.signal(signum, signal.SIG_DFL)  # a second one kills the process the default way
        if self._stop is not None:
            self._stop.set()
        elif first:
            raise StopRequested(signum)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
