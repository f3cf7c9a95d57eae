"""Which texts share a model call: length-sorted batches that weigh padding against the cost of a call.

A model call on a padded ``(count, longest)`` batch costs about ``call_cost + count × longest`` padded
tokens' worth of time: the fixed part is the per-call work that does not grow with the batch (Python
module calls, kernel launches, thread wake-ups). Sorting texts by length and cutting every
``batch_size`` texts (the obvious plan) keeps padding low where lengths are dense, but a sparse set of
texts — the few rewrites the defense re-classifies, a micro-batch at partial load — spans a wide range
of lengths, and its batches pad short texts to long ones. `plan_batches` cuts the sorted texts where
the total cost is least (dynamic programming over the cut points, O(n × batch_size)), so a batch is
split when the padding it saves outweighs one more call.

Measured on 2 CPU cores with MiniLM-L6 (``scripts/call_cost.py``, which fits it and times the plans):
a call costs 33-62 padded tokens' worth of time, forward-only or forward+backward, hence
`CPU_CALL_COST_TOKENS`; on the benchmark's short texts the plan cuts X-GRAAD scoring time 3-5 % and the
re-classification of the ~23 % rewritten texts ~10 % against the fewest batches. On CUDA the fixed
part dominates a small model's call (not measured here), so the default there is `None`: fewest
batches, then least padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

CPU_CALL_COST_TOKENS = 48


def resolve_call_cost(setting: int | None, device: torch.device) -> int | None:
    """The call cost to plan with: the setting (`call_cost_tokens`), else the default for `device`."""
    if setting is not None:
        return setting
    return CPU_CALL_COST_TOKENS if device.type == "cpu" else None


def plan_batches(
    lengths: Sequence[int],
    *,
    batch_size: int,
    max_batch_tokens: int | None = None,
    call_cost: int | None = None,
) -> list[list[int]]:
    """Indices of `lengths` grouped into batches of similar length, shortest first.

    Each batch has at most `batch_size` texts and, if set, at most `max_batch_tokens` padded tokens (a
    text longer than the budget gets a batch of its own). Among such plans it picks the one with the
    least ``call_cost × batches + padded tokens``; `call_cost` None means the fewest batches, and the
    least padding among those.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    count = len(lengths)
    if count == 0:
        return []
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    sorted_lengths = np.asarray(lengths, dtype=np.float64)[order]
    # None: a call outweighs any padding (no plan pads more than count × longest)
    per_call = float(call_cost) if call_cost is not None else count * float(sorted_lengths[-1]) + 1.0
    best = np.zeros(count + 1)  # best[end]: least cost of the first `end` sorted texts
    cut = np.zeros(count + 1, dtype=np.int64)  # where the last batch of that plan starts
    for end in range(1, count + 1):
        first = max(0, end - batch_size)
        sizes = end - np.arange(first, end)  # batch sizes when the last batch starts at first..end-1
        padded = sizes * sorted_lengths[end - 1]
        cost = best[first:end] + per_call + padded
        if max_batch_tokens is not None:
            cost = np.where((padded <= max_batch_tokens) | (sizes == 1), cost, np.inf)
        pick = int(np.argmin(cost))  # ties: the earliest start, i.e. the larger batch
        best[end], cut[end] = cost[pick], first + pick
    batches: list[list[int]] = []
    end = count
    while end > 0:
        batches.append([int(i) for i in order[cut[end] : end]])
        end = int(cut[end])
    return batches[::-1]
