"""The micro-batcher: count, padded-token budget and wait limits, order, drop."""

from __future__ import annotations

import pytest

from stream_guard.batching import BatchLimits, MicroBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_closes_at_max_items_and_keeps_order():
    batcher: MicroBatcher[int] = MicroBatcher(BatchLimits(max_items=3, max_tokens=None, max_wait_s=10))
    for i in range(7):
        batcher.add(i, tokens=5)
    assert batcher.ready() and len(batcher) == 7
    assert batcher.take() == [0, 1, 2]
    assert batcher.take() == [3, 4, 5]
    assert not batcher.ready() and batcher.open_size == 1
    assert batcher.take() == [6]  # the open batch, taken before it is ready
    assert batcher.take() == [] and len(batcher) == 0 and batcher.time_left() is None


def test_padded_token_budget_is_longest_times_count():
    batcher: MicroBatcher[str] = MicroBatcher(BatchLimits(max_items=100, max_tokens=100, max_wait_s=10))
    batcher.add("a", 10)
    batcher.add("b", 10)
    batcher.add("c", 30)  # 30 × 3 = 90 padded tokens (a sum of lengths would say 50)
    assert not batcher.ready()
    batcher.add("d", 30)  # 30 × 4 = 120 > 100: the batch closes before d
    assert batcher.ready()
    assert batcher.take() == ["a", "b", "c"]
    assert batcher.open_size == 1 and not batcher.ready()


def test_oversize_item_gets_a_batch_of_its_own():
    batcher: MicroBatcher[str] = MicroBatcher(BatchLimits(max_items=10, max_tokens=50, max_wait_s=10))
    batcher.add("small", 10)
    batcher.add("huge", 500)
    batcher.add("small2", 10)
    assert batcher.take() == ["small"]
    assert batcher.take() == ["huge"]
    assert batcher.take() == ["small2"]


def test_zero_token_items_count_toward_items_only():
    batcher: MicroBatcher[str] = MicroBatcher(BatchLimits(max_items=4, max_tokens=40, max_wait_s=10))
    batcher.add("text", 20)
    batcher.add("dead1", 0)
    batcher.add("dead2", 0)
    assert not batcher.ready()  # cost is still 20 × 1
    batcher.add("text2", 20)  # 20 × 2 = 40 fits; and 4 items close the batch
    assert batcher.take() == ["text", "dead1", "dead2", "text2"]


def test_max_wait_counts_from_the_first_item():
    clock = Clock()
    batcher: MicroBatcher[int] = MicroBatcher(BatchLimits(max_items=10, max_wait_s=0.5), clock=clock)
    batcher.add(1, 3)
    clock.now += 0.3
    batcher.add(2, 3)
    assert not batcher.ready() and batcher.time_left() == pytest.approx(0.2)
    clock.now += 0.2
    assert batcher.ready() and batcher.time_left() == 0.0
    assert batcher.take() == [1, 2]
    clock.now += 5
    batcher.add(3, 3)  # a new batch starts its own clock
    assert not batcher.ready()


def test_drop_removes_matching_items_everywhere_in_order():
    batcher: MicroBatcher[tuple[int, int]] = MicroBatcher(BatchLimits(max_items=3, max_wait_s=10))
    items = [(i % 2, i) for i in range(8)]  # (partition, offset)
    for item in items:
        batcher.add(item, 1)
    dropped = batcher.drop(lambda item: item[0] == 1)
    assert dropped == [item for item in items if item[0] == 1]
    assert [batcher.take() for _ in range(3)] == [[(0, 0), (0, 2)], [(0, 4)], [(0, 6)]]
    assert len(batcher) == 0


def test_limits_are_validated():
    with pytest.raises(ValueError):
        BatchLimits(max_items=0)
    with pytest.raises(ValueError):
        BatchLimits(max_tokens=0)
    with pytest.raises(ValueError):
        BatchLimits(max_wait_s=-1)
