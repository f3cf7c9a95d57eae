from __future__ import annotations

import itertools
import random

import pytest
import torch

from stream_guard.batch_plan import CPU_CALL_COST_TOKENS, plan_batches, resolve_call_cost


def plan_cost(lengths: list[int], batches: list[list[int]], call_cost: float) -> float:
    return sum(call_cost + len(b) * max(lengths[i] for i in b) for b in batches)


def cheapest_by_enumeration(lengths: list[int], batch_size: int, call_cost: float) -> float:
    """Every way of cutting the sorted lengths into runs of at most `batch_size`: the least cost."""
    ordered = sorted(lengths)
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=len(ordered) - 1):
        runs, start = [], 0
        for end, cut in enumerate(cuts, start=1):
            if cut:
                runs.append(ordered[start:end])
                start = end
        runs.append(ordered[start:])
        if all(len(r) <= batch_size for r in runs):
            best = min(best, sum(call_cost + len(r) * max(r) for r in runs))
    return best


def check_partition(lengths: list[int], batches: list[list[int]], batch_size: int) -> None:
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    widths = [[lengths[i] for i in b] for b in batches]
    flat = [w for ws in widths for w in ws]
    assert flat == sorted(flat)  # shortest first, each batch a run of the sorted lengths


@pytest.mark.parametrize("seed", range(40))
def test_plan_is_the_cheapest_cut_of_the_sorted_lengths(seed):
    rng = random.Random(seed)
    lengths = [rng.choice([3, 5, 8, 12, 20, 40, 90]) + rng.randrange(3) for _ in range(rng.randrange(1, 10))]
    batch_size = rng.choice([1, 2, 3, 4, 8])
    call_cost = rng.choice([0, 10, 48, 300])
    batches = plan_batches(lengths, batch_size=batch_size, call_cost=call_cost)
    check_partition(lengths, batches, batch_size)
    assert plan_cost(lengths, batches, call_cost) == cheapest_by_enumeration(lengths, batch_size, call_cost)


def test_a_sparse_set_of_lengths_is_split_where_padding_costs_more_than_a_call():
    lengths = [6] * 10 + [90] * 10
    assert [len(b) for b in plan_batches(lengths, batch_size=32, call_cost=48)] == [10, 10]
    # ten rows of 84 padding tokens outweigh one call of 48 tokens, but not one of 1,000
    assert [len(b) for b in plan_batches(lengths, batch_size=32, call_cost=1_000)] == [20]


def test_no_call_cost_means_fewest_batches_then_least_padding():
    rng = random.Random(7)
    lengths = [rng.randrange(4, 120) for _ in range(100)]
    batches = plan_batches(lengths, batch_size=32)
    assert len(batches) == 4
    check_partition(lengths, batches, 32)
    # the cut that packs 32, 32, 32, 4 from the shortest on pads more than the plan's
    ordered = sorted(range(100), key=lambda i: lengths[i])
    packed = [ordered[i : i + 32] for i in range(0, 100, 32)]
    assert plan_cost(lengths, batches, 0) <= plan_cost(lengths, packed, 0)


def test_token_budget_bounds_every_batch_and_a_long_text_goes_alone():
    lengths = [10] * 30 + [300, 40, 40]
    batches = plan_batches(lengths, batch_size=32, max_batch_tokens=200, call_cost=48)
    check_partition(lengths, batches, 32)
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) * width <= 200 or batch == [30]
    assert [30] in batches


def test_empty_input_and_invalid_batch_size():
    assert plan_batches([], batch_size=4) == []
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([3], batch_size=0)


def test_call_cost_defaults_by_device_unless_set():
    assert resolve_call_cost(None, torch.device("cpu")) == CPU_CALL_COST_TOKENS
    assert resolve_call_cost(None, torch.device("cuda")) is None
    assert resolve_call_cost(7, torch.device("cuda")) == 7
