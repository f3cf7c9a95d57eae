"""A micro-batcher: gather items until a count, a padded-token budget or a wait, whichever comes first.

Kafka clients hand out messages in small, irregular chunks (confluent-kafka's ``consume(num, timeout)``
returns early), while the model is cheapest per text in full batches. :class:`MicroBatcher` sits in
between, like Faust's ``take(max, within)``: the caller adds items as they arrive and takes a batch
once :meth:`MicroBatcher.ready` says so.

A batch is closed when the first of these holds:

* it holds ``max_items`` items;
* adding the next item would exceed ``max_tokens`` **padded** tokens. The cost of a batch is
  ``longest × count`` over its items with a token count above zero: that is the size of the padded
  ``(batch, seq_len)`` tensor the model runs on, which is what bounds time and memory (a sum of lengths
  would under-count a batch with one long text). An item whose cost alone is over the budget makes a
  batch of its own. Items added with ``tokens=0`` (e.g. messages that will not be scored) count toward
  ``max_items`` only;
* ``max_wait_s`` seconds have passed since its first item was added.

Closed batches queue in order; :meth:`take` returns the oldest one, or the open batch if none is
closed. Item order is preserved across batches. Not thread-safe: use it from one thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["BatchLimits", "MicroBatcher"]


@dataclass(frozen=True)
class BatchLimits:
    """When a batch is closed: ``max_items`` items, ``max_tokens`` padded tokens or ``max_wait_s``."""

    max_items: int = 32
    max_tokens: int | None = 16_384
    max_wait_s: float = 0.05

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {self.max_items}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {self.max_tokens}")
        if self.max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {self.max_wait_s}")


@dataclass
class _Batch(Generic[T]):
    started: float
    items: list[T] = field(default_factory=list)
    longest: int = 0
    weighted: int = 0  # items with tokens > 0

    def cost_with(self, tokens: int) -> int:
        if tokens <= 0:
            return self.longest * self.weighted
        return max(self.longest, tokens) * (self.weighted + 1)

    def add(self, item: T, tokens: int) -> None:
        self.items.append(item)
        if tokens > 0:
            self.longest = max(self.longest, tokens)
            self.weighted += 1


class MicroBatcher(Generic[T]):
    """Accumulates items into batches bounded by :class:`BatchLimits` (see the module docstring).

    Args:
        limits: the bounds of one batch.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(self, limits: BatchLimits | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.limits = limits or BatchLimits()
        self._clock = clock
        self._closed: deque[list[T]] = deque()
        self._open: _Batch[T] | None = None

    def __len__(self) -> int:
        """Items held, in closed and open batches."""
        return sum(len(b) for b in self._closed) + (len(self._open.items) if self._open else 0)

    @property
    def open_size(self) -> int:
        """Items in the open (not yet closed) batch."""
        return len(self._open.items) if self._open else 0

    def add(self, item: T, tokens: int = 0) -> None:
        """Add an item that will cost ``tokens`` tokens when scored (0: not scored)."""
        limits = self.limits
        batch = self._open
        budget = limits.max_tokens
        if batch is not None and budget is not None and batch.cost_with(tokens) > budget:
            self._close()
            batch = None
        if batch is None:
            batch = self._open = _Batch(started=self._clock())
        batch.add(item, tokens)
        if len(batch.items) >= limits.max_items:
            self._close()

    def ready(self) -> bool:
        """Whether a batch is closed or the open one has waited ``max_wait_s``."""
        return bool(self._closed) or (
            self._open is not None and self._clock() - self._open.started >= self.limits.max_wait_s
        )

    def time_left(self) -> float | None:
        """Seconds until a batch is ready (0 when one is), None when nothing is held."""
        if self._closed:
            return 0.0
        if self._open is None:
            return None
        return max(0.0, self._open.started + self.limits.max_wait_s - self._clock())

    def take(self) -> list[T]:
        """The oldest closed batch, else the open one whether ready or not; [] when empty."""
        if self._closed:
            return self._closed.popleft()
        if self._open is None:
            return []
        items = self._open.items
        self._open = None
        return items

    def drop(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove (and return) every held item for which ``predicate`` is true; order is kept."""
        dropped: list[T] = []
        kept_batches: deque[list[T]] = deque()
        for batch in self._closed:
            kept = [i for i in batch if not predicate(i)]
            dropped.extend(i for i in batch if predicate(i))
            if kept:
                kept_batches.append(kept)
        self._closed = kept_batches
        if self._open is not None:
            dropped.extend(i for i in self._open.items if predicate(i))
            survivors = [i for i in self._open.items if not predicate(i)]
            if len(survivors) != len(self._open.items):
                # token costs of the survivors are unknown here: keep the old (conservative) figures
                self._open.items = survivors
                if not survivors:
                    self._open = None
        return dropped

    def _close(self) -> None:
        if self._open is not None and self._open.items:
            self._closed.append(self._open.items)
        self._open = None
