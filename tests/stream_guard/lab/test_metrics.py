"""Tests for stream_guard.lab.metrics on small handmade cases with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_guard.lab.metrics import (
    DetectionMetrics,
    attack_success_rate,
    auroc,
    clean_accuracy,
    detection_metrics,
    rankdata,
    spearman,
)


def test_clean_accuracy() -> None:
    assert clean_accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert clean_accuracy(np.array([2, 2]), [2, 2]) == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        clean_accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="empty"):
        clean_accuracy([], [])


def test_attack_success_rate() -> None:
    assert attack_success_rate([1, 1, 0, 1], target_label=1) == 0.75
    # with original labels, samples already of the target class are left out: [1, 0] -> 0.5
    assert attack_success_rate([1, 1, 0, 1], target_label=1, original_labels=[0, 1, 0, 1]) == 0.5
    with pytest.raises(ValueError, match="non-target"):
        attack_success_rate([1], target_label=1, original_labels=[1])


def test_detection_metrics() -> None:
    # clean: 1 of 4 flagged (FP=1, TN=3); poisoned: 3 of 5 flagged (TP=3, FN=2)
    m = detection_metrics([0, 1, 0, 0], [1, 1, 0, 1, 0])
    precision, recall, fpr = m
    assert (precision, recall, fpr) == (0.75, 0.6, 0.25)
    assert m.tpr == 0.6
    assert m.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert detection_metrics([False, False], [False]) == DetectionMetrics(0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        detection_metrics([], [True])


def test_rankdata_averages_ties() -> None:
    assert rankdata([10, 20, 10, 30, 20, 20]).tolist() == [1.5, 4.0, 1.5, 6.0, 4.0, 4.0]


def test_auroc_perfect_inverse_and_random() -> None:
    assert auroc([0.1, 0.2], [0.3, 0.9]) == 1.0
    assert auroc([0.3, 0.9], [0.1, 0.2]) == 0.0
    assert auroc([5, 5, 5], [5, 5]) == 0.5


def test_auroc_with_ties_by_hand() -> None:
    # clean [1, 2, 2, 3], poisoned [2, 3, 4]; pairs (p, c): 12 in all
    # p=2: beats 1 (1), ties 2,2 (0.5+0.5), loses to 3 (0)   -> 2.0
    # p=3: beats 1,2,2 (3), ties 3 (0.5)                     -> 3.5
    # p=4: beats all four                                    -> 4.0
    assert auroc([1, 2, 2, 3], [2, 3, 4]) == pytest.approx(9.5 / 12)


def test_auroc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 5, size=40).astype(float)
    poisoned = rng.integers(1, 7, size=25).astype(float)
    pairs = [(p > c) + 0.5 * (p == c) for p in poisoned for c in clean]
    assert auroc(clean, poisoned) == pytest.approx(sum(pairs) / len(pairs))


def test_auroc_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        auroc([0.1, float("nan")], [0.2])


def test_spearman() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [9, 4, 1, 0]) == pytest.approx(-1.0)
    # monotone but nonlinear: still 1
    assert spearman([1, 2, 3, 4, 5], [1, 4, 9, 16, 1000]) == pytest.approx(1.0)
    # by hand, no ties: ranks x=[1,2,3,4,5], y=[2,1,4,3,5]; d^2 sum = 4 -> 1 - 6*4/(5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [20, 10, 40, 30, 50]) == pytest.approx(0.8)
    # with ties: x ranks [1.5, 1.5, 3], y ranks [1, 2, 3] -> pearson = 1.5 / sqrt(1.5 * 2)
    assert spearman([7, 7, 9], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3.0))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])
