"""Wall-clock timing and peak memory of one benchmark step.

Peak memory is what the step adds on top of what was in use before it:
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensor memory on the GPU);
- CPU on Linux: the process's peak resident set (``VmHWM``), reset before the step through
  ``/proc/self/clear_refs`` and reported above the resident set at the start. Freed memory that the C
  allocator keeps would hide a step's allocations, so memory is measured in a pass of its own
  (`cpu_memory_pass`) in which glibc returns freed blocks to the system (``malloc_trim``) and serves
  every block above 64 KiB with its own mapping (``mallopt``) — too slow for the timed runs;
- elsewhere: ``resource.getrusage`` peak RSS, which cannot be reset (an upper bound; `exact` is False).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stream_guard.torch_thread import run_on_torch_thread

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class PeakMemory:
    """Bytes a step added at its peak; `kind` names what was measured."""

    kind: str = ""
    bytes: int = 0
    exact: bool = True


@dataclass
class Timing:
    """Seconds of each repeat of a step (after warm-up)."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        ordered = sorted(self.seconds)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    @property
    def spread(self) -> float:
        """(max - min) / median: how much the repeats disagree."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.seconds else 0.0


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


_M_MMAP_THRESHOLD = -3


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc() if sys.platform.startswith("linux") else None


@contextmanager
def cpu_memory_pass() -> Iterator[None]:
    """Let RSS follow live memory: blocks above 64 KiB get their own mapping, freed ones go back.

    Once set, glibc keeps the fixed threshold (its dynamic one is off for the rest of the process), so
    run this after every timed run.
    """
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
    yield


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def peak_memory(device: torch.device, *, absolute: bool = False) -> Iterator[PeakMemory]:
    """Measure the peak memory of the `with` block (filled in when the block ends).

    By default what the block added above what was in use at its start; `absolute` reports the whole
    process's peak (CPU) or all tensors' peak (CUDA) during the block instead.
    """
    result = PeakMemory()
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = 0 if absolute else torch.cuda.memory_allocated(device)
        yield result
        synchronize(device)
        result.kind, result.bytes = "cuda-allocated", torch.cuda.max_memory_allocated(device) - before
        return
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    if _reset_peak_rss() and (start := _status_kib("VmRSS")) is not None:
        yield result
        peak = _status_kib("VmHWM") or start
        result.kind, result.bytes = "rss", max(peak - (0 if absolute else start), 0) * 1024
        return
    start_rss = 0 if absolute else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield result
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result.kind, result.bytes, result.exact = "max-rss", max(peak - start_rss, 0) * scale, False


def time_step(step: Callable[[], object], device: torch.device, repeats: int) -> Timing:
    """Run `step` `repeats` times on the torch thread (the caller warms up first) and keep each run's
    seconds. Every model call of the benchmark runs on that thread, as the worker's do: a second
    thread running torch would slow every mode (`stream_guard.torch_thread`)."""
    return run_on_torch_thread(_time_here, step, device, repeats)


def _time_here(step: Callable[[], object], device: torch.device, repeats: int) -> Timing:
    timing = Timing()
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        timing.seconds.append(time.perf_counter() - start)
    return timing
