from __future__ import annotations

import numpy as np
import pytest

from stream_guard.calibration import MIN_PER_BUCKET, bucket_thresholds, calibrate
from stream_guard.defender import Defender

CLEAN = [f"sentence number {i} is about {'a long and winding road ' * (i % 4)} film" for i in range(40)]


def test_percentile_threshold_flags_the_expected_share(tiny_bert):
    cal = calibrate(Defender(tiny_bert), CLEAN, percentile=80)
    assert cal.threshold.value == pytest.approx(np.percentile(cal.scores, 80))
    assert cal.clean_flag_rate() == pytest.approx(0.2, abs=0.05)
    assert cal.threshold.percentile == 80
    assert cal.summary()["n_texts"] == 40


def test_version_is_deterministic(tiny_bert):
    a = calibrate(Defender(tiny_bert), CLEAN[:10], percentile=90)
    b = calibrate(Defender(tiny_bert), CLEAN[:10], percentile=90)
    assert a.threshold == b.threshold


def test_bad_percentile_and_empty_input(tiny_bert):
    with pytest.raises(ValueError):
        calibrate(Defender(tiny_bert), CLEAN, percentile=100)
    with pytest.raises(ValueError):
        calibrate(Defender(tiny_bert), [], percentile=95)


def test_buckets_take_their_own_percentile_and_merge_small_ones():
    short = np.full(MIN_PER_BUCKET, 1.0)
    long = np.full(MIN_PER_BUCKET, 5.0)
    scores = np.concatenate([short, [3.0] * 5, long])
    tokens = np.concatenate([np.full(MIN_PER_BUCKET, 10), np.full(5, 30), np.full(MIN_PER_BUCKET, 100)])
    buckets, tail = bucket_thresholds(scores, tokens, 50, [16, 32, 64])
    # the 5 texts of (16, 32] are too few: they merge into (16, 64], which then has 5 texts too, and so
    # everything past 16 tokens falls into the tail
    assert buckets == [(16, 1.0)]
    assert tail == pytest.approx(np.percentile(np.concatenate([[3.0] * 5, long]), 50))


def test_confidence_quantile_sets_the_gate_from_clean_confidences(tiny_bert):
    defender = Defender(tiny_bert)
    confidences = np.array([s.probabilities.max() for s in defender.score(CLEAN)])
    cal = calibrate(defender, CLEAN, percentile=80, confidence_quantile=0.5)
    assert cal.threshold.min_confidence == pytest.approx(np.quantile(confidences, 0.5))
    assert calibrate(defender, CLEAN, percentile=80).threshold.min_confidence is None
    # the gate is part of what the version names
    assert cal.threshold.version != calibrate(defender, CLEAN, percentile=80).threshold.version
    with pytest.raises(ValueError, match="confidence_quantile"):
        calibrate(defender, CLEAN, percentile=80, confidence_quantile=1.5)
