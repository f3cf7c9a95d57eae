"""Flow control: pause the input partitions while the scorer is busy and enough batches wait.

The worker never stops polling (heartbeats, rebalance callbacks and ``max.poll.interval.ms`` stay
served however long a batch takes), so what it reads while a batch is being scored piles up. Once
``buffer_batches`` batches wait behind a busy scorer, every assigned partition is paused (newly
assigned ones on arrival) and they are resumed when half of that is gone. ``buffer_batches=0`` pauses
as soon as a batch is handed to the scorer. Pausing is not free: librdkafka drops its prefetched
messages and, on Tansu, the first message after ``resume`` takes 0.45–0.95 s, so pausing per batch
would cap throughput at about two batches a second; the buffer lets those refetches overlap scoring.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FlowControl"]


class FlowControl:
    """Pauses and resumes a consumer's assignment by the number of messages waiting.

    Args:
        high: messages waiting (with the scorer busy) at which to pause: ``buffer_batches`` batches.
        set_gauge: called with 1 on pause and 0 on resume (the ``paused`` metric).
    """

    def __init__(self, high: int, set_gauge: Any) -> None:
        self.high = high
        self.paused = False
        self._set_gauge = set_gauge

    def update(self, consumer: Any, waiting: int, busy: bool) -> None:
        """Pause or resume ``consumer`` for ``waiting`` buffered messages and the scorer's state."""
        high = self.high
        if not self.paused and busy and waiting >= high:
            self._switch(consumer, pause=True)
        elif self.paused and (not busy if high == 0 else waiting <= high // 2):
            self._switch(consumer, pause=False)

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """While paused, newly assigned partitions wait too (call from the assign callback)."""
        if self.paused and partitions:
            consumer.incremental_assign(partitions)
            consumer.pause(partitions)

    def _switch(self, consumer: Any, *, pause: bool) -> None:
        partitions = consumer.assignment()
        if partitions:
            (consumer.pause if pause else consumer.resume)(partitions)
        self.paused = pause
        self._set_gauge(1 if pause else 0)
