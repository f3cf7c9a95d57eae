"""Seeded, stratified index selection shared by dataset loading (``limit``) and splitting (``max_*``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def proportional_quotas(counts: Sequence[int], total: int) -> list[int]:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, ties to lower class).

    Each quota is at most its class count; ``sum(quotas) == min(total, sum(counts))``.
    """
    available = sum(counts)
    total = min(total, available)
    if available == 0 or total == 0:
        return [0] * len(counts)
    exact = [c * total / available for c in counts]
    quotas = [int(x) for x in exact]
    by_remainder = sorted(range(len(counts)), key=lambda k: (-(exact[k] - quotas[k]), k))
    for k in by_remainder[: total - sum(quotas)]:
        quotas[k] += 1
    return quotas


def class_permutations(labels: Sequence[int], num_classes: int, seed: int) -> list[np.ndarray]:
    """For each class, the indices of its samples in a seeded random order."""
    rng = np.random.default_rng(seed)
    label_arr = np.asarray(labels, dtype=np.int64)
    return [rng.permutation(np.flatnonzero(label_arr == k)) for k in range(num_classes)]


def stratified_take(labels: Sequence[int], num_classes: int, n: int, seed: int) -> list[int]:
    """``n`` indices drawn without replacement, class proportions kept, returned in ascending order."""
    perms = class_permutations(labels, num_classes, seed)
    quotas = proportional_quotas([len(p) for p in perms], n)
    chosen = [int(i) for perm, q in zip(perms, quotas, strict=True) for i in perm[:q]]
    return sorted(chosen)
