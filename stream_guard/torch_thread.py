"""One thread for all of a process's model work.

Why: the CPU builds of torch run their parallel regions on libgomp (GNU OpenMP), which keeps a pool of
OpenMP threads for every thread that has started a parallel region. As soon as a second thread has run
the model (say the scoring worker's thread after the main thread calibrated), the process holds more
OpenMP threads than the machine has cores, and libgomp stops letting idle pool threads spin (about
300,000 spins) before they sleep: they sleep after 100. Every one of the hundreds of parallel regions in
a forward and backward pass then pays a futex wake-up. On the 2-core machine of the README, batched
scoring drops from 152-156 to 129-135 texts/s (``.venv/bin/python scripts/openmp_pools.py``).

So every part of stream-guard that runs the model from a process with more than one thread (the scoring
worker, the demo's calibration, the benchmark) runs it here: one long-lived thread, one OpenMP pool.
A call made on that thread runs inline, so nested use cannot deadlock. A single-threaded program (the
lab, replay, the calibration job) does not need it: its main thread is its only torch thread.

A thread keeps the torch thread count it had at its first parallel region, so ``torch.set_num_threads``
called elsewhere does not reach this thread once it has run the model: use :func:`set_torch_threads`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["on_torch_thread", "run_on_torch_thread", "set_torch_threads", "submit_to_torch_thread"]

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_ident: int | None = None


def _remember_thread() -> None:
    global _ident
    _ident = threading.get_ident()


def _torch_executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="torch", initializer=_remember_thread)
        return _executor


def on_torch_thread() -> bool:
    """Whether the calling thread is the torch thread."""
    return _ident is not None and threading.get_ident() == _ident


def submit_to_torch_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Queue `fn(*args, **kwargs)` on the torch thread (in submission order); its Future.

    From the torch thread itself it runs at once and returns a finished Future (queuing it behind the
    caller would wait forever).
    """
    if on_torch_thread():
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as error:
            done.set_exception(error)
        return done
    return _torch_executor().submit(fn, *args, **kwargs)


def run_on_torch_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` run on the torch thread; its result, or its exception re-raised here."""
    return submit_to_torch_thread(fn, *args, **kwargs).result()


def set_torch_threads(count: int) -> None:
    """``torch.set_num_threads(count)`` on the calling thread and on the torch thread."""
    import torch

    torch.set_num_threads(count)
    run_on_torch_thread(torch.set_num_threads, count)
