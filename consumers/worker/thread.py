"""The scoring worker in a background thread: how the demo, the bench and the tests run one in-process.

``stream-guard run`` runs :meth:`Worker.run <consumers.worker.loop.Worker.run>` on the main thread;
everything else that needs a live worker beside other work uses a :class:`WorkerThread`::

    with WorkerThread(Worker(settings, defender=defender)) as thread:
        thread.wait_assigned(30)
        ...                       # produce input, read outputs
    # leaving the block stops the worker (batch in hand finished, committed) and joins the thread

``stop()`` re-raises what stopped the worker abnormally (e.g. a DeliveryError), so a test fails on it;
``error`` holds it for callers that report it themselves (the demo's live view).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from consumers.worker.loop import Worker

__all__ = ["WorkerThread"]


class WorkerThread:
    """Runs ``worker.run()`` in a daemon thread.

    Args:
        worker: the worker to run.
        name: the thread's name (shows in logs and stack dumps).
        on_error: called in the worker's thread with what stopped it abnormally (besides ``error``).
    """

    def __init__(
        self,
        worker: Worker,
        *,
        name: str = "stream-guard-worker",
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.worker: Worker | None = worker
        self.stats = worker.stats
        self.error: BaseException | None = None
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, args=(worker,), name=name, daemon=True)

    def _run(self, worker: Worker) -> None:
        try:
            worker.run()
        except BaseException as error:
            self.error = error
            if self._on_error is not None:
                self._on_error(error)

    def start(self) -> Self:
        self._thread.start()
        return self

    def wait_assigned(self, timeout: float) -> bool:
        """Block until the worker owns at least one input partition (False after ``timeout`` s)."""
        return self.worker is not None and self.worker.wait_assigned(timeout)

    def join(self, timeout: float) -> bool:
        """Wait for the worker to end on its own (it failed, or was stopped); True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 60.0, *, reraise: bool = True) -> None:
        """Ask the worker to finish the batch in hand and commit; wait for the thread.

        Once the thread has ended the worker object is let go of, so its Kafka clients close while the
        broker still runs. Raises TimeoutError if the thread is still alive after ``timeout`` seconds,
        and (``reraise``) what stopped the worker abnormally.
        """
        worker = self.worker
        if worker is not None:
            worker.stop()
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the worker did not stop within {timeout:g} s")
            self.worker = None
        if reraise and self.error is not None:
            raise self.error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        # an exception already on its way out wins over the worker's own
        self.stop(reraise=kind is None)
