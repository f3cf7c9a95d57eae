"""Evaluation metrics for the backdoor lab (numpy only).

- clean accuracy (CACC) on clean test data;
- attack success rate (ASR): the fraction of poisoned non-target samples predicted as the target;
- detection precision / recall (TPR) / false-positive rate of a defender's flags, poisoned = positive;
- AUROC of a detector's scores (poisoned = positive), rank-based, ties counted half;
- Spearman rank correlation (average ranks for ties).

Inputs are any 1-D array-likes; empty or mismatched inputs raise ``ValueError``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike


def _vector(values: ArrayLike, name: str, dtype: type | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} differ in length: {a.size} vs {b.size}")


def clean_accuracy(preds: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of ``preds`` equal to ``labels``."""
    p, y = _vector(preds, "preds"), _vector(labels, "labels")
    _same_length(p, y, "preds and labels")
    return float(np.mean(p == y))


def attack_success_rate(
    preds_on_poisoned: ArrayLike, target_label: int, original_labels: ArrayLike | None = None
) -> float:
    """Fraction of predictions on poisoned samples equal to ``target_label``.

    Pass the predictions on the poisoned **non-target** samples (``poison_test_set``); or pass
    ``original_labels`` too and samples whose true label already is the target are left out.
    """
    p = _vector(preds_on_poisoned, "preds_on_poisoned")
    if original_labels is not None:
        y = _vector(original_labels, "original_labels")
        _same_length(p, y, "preds_on_poisoned and original_labels")
        p = p[y != target_label]
        if p.size == 0:
            raise ValueError("no poisoned sample has a non-target original label")
    return float(np.mean(p == target_label))


class DetectionMetrics(NamedTuple):
    """Flags vs truth with poisoned = positive. ``precision`` is 0.0 when nothing was flagged."""

    precision: float
    recall: float
    fpr: float

    @property
    def tpr(self) -> float:
        return self.recall

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 0.0 if total == 0 else 2 * self.precision * self.recall / total


def detection_metrics(flagged_clean: ArrayLike, flagged_poisoned: ArrayLike) -> DetectionMetrics:
    """Precision, recall (TPR) and FPR from one boolean flag per clean and per poisoned sample."""
    clean = _vector(flagged_clean, "flagged_clean").astype(bool)
    poisoned = _vector(flagged_poisoned, "flagged_poisoned").astype(bool)
    tp, fp = int(poisoned.sum()), int(clean.sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    return DetectionMetrics(precision=precision, recall=tp / poisoned.size, fpr=fp / clean.size)


def rankdata(values: ArrayLike) -> np.ndarray:
    """1-based ranks; tied values share the average of the ranks they span."""
    x = _vector(values, "values", dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # start of each run of equal values, and the run each sorted position belongs to
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    run_of = np.cumsum(np.r_[True, sorted_x[1:] != sorted_x[:-1]]) - 1
    ends = np.r_[starts[1:], x.size]  # exclusive
    average = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=float)
    ranks[order] = average[run_of]
    return ranks


def auroc(scores_clean: ArrayLike, scores_poisoned: ArrayLike) -> float:
    """P(score_poisoned > score_clean) + ½·P(equal), via the Mann–Whitney U statistic."""
    clean = _vector(scores_clean, "scores_clean", dtype=float)
    poisoned = _vector(scores_poisoned, "scores_poisoned", dtype=float)
    if np.isnan(clean).any() or np.isnan(poisoned).any():
        raise ValueError("scores contain NaN")
    ranks = rankdata(np.concatenate([clean, poisoned]))
    n_p, n_c = poisoned.size, clean.size
    u = ranks[n_c:].sum() - n_p * (n_p + 1) / 2.0
    return float(u / (n_p * n_c))


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks); NaN if either is constant."""
    a, b = _vector(x, "x", dtype=float), _vector(y, "y", dtype=float)
    _same_length(a, b, "x and y")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("inputs contain NaN")
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float("nan") if denom == 0 else float((ra * rb).sum() / denom)
