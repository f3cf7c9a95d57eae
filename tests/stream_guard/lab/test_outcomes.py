"""How the evaluation counts CACC, ASR and detection metrics, on handmade per-text results."""

from __future__ import annotations

import numpy as np
import pytest

from stream_guard.lab.defenses.base import DefenseOutcome

Y = np.array([0, 1, 0, 1])  # true labels of 4 clean texts
TARGET = 0


def _outcome(mode, clean_labels, clean_flags, poisoned_labels, poisoned_flags, scores=None) -> DefenseOutcome:
    return DefenseOutcome(
        name=mode,
        mode=mode,
        clean_labels=np.array(clean_labels),
        clean_flags=np.array(clean_flags, dtype=bool),
        poisoned_labels=np.array(poisoned_labels),
        poisoned_flags=np.array(poisoned_flags, dtype=bool),
        seconds=0.6,
        clean_scores=None if scores is None else np.array(scores[0], dtype=float),
        poisoned_scores=None if scores is None else np.array(scores[1], dtype=float),
    )


def test_reject_mode_counts_rejected_clean_as_wrong_and_rejected_poisoned_as_not_attacked() -> None:
    # clean: all predicted right, the 2nd is rejected; poisoned: all predicted target, 2 of 3 rejected
    o = _outcome("reject", [0, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0], [1, 1, 0], scores=([0, 3, 1, 0], [5, 4, 2]))
    row = o.summary(Y, TARGET)
    assert row["cacc"] == pytest.approx(0.75)
    assert row["asr"] == pytest.approx(1 / 3)
    assert row["precision"] == pytest.approx(2 / 3)
    assert row["recall"] == pytest.approx(2 / 3)
    assert row["fpr"] == pytest.approx(0.25)
    assert row["auroc"] == pytest.approx(11 / 12)  # 11 of 12 (poisoned, clean) pairs ordered right
    assert row["seconds_per_1000"] == pytest.approx(1000 * 0.6 / 7)


def test_neutralize_mode_uses_the_final_labels() -> None:
    # a flagged clean text whose label survived neutralization is still right
    o = _outcome("neutralize", [0, 1, 1, 1], [1, 0, 0, 0], [1, 0, 1], [1, 0, 1])
    row = o.summary(Y, TARGET)
    assert row["cacc"] == pytest.approx(0.75)
    assert row["asr"] == pytest.approx(1 / 3)
    assert row["recall"] == pytest.approx(2 / 3) and row["fpr"] == pytest.approx(0.25)
    assert row["auroc"] is None


def test_no_defense_has_no_detection_metrics() -> None:
    o = _outcome("none", [0, 1, 0, 0], [0, 0, 0, 0], [0, 1, 0], [0, 0, 0])
    row = o.summary(Y, TARGET)
    assert row["cacc"] == pytest.approx(0.75) and row["asr"] == pytest.approx(2 / 3)
    assert row["precision"] is None and row["recall"] is None and row["fpr"] is None


def test_no_poisoned_texts_leaves_asr_empty() -> None:
    o = _outcome("reject", [0, 1, 0, 1], [0, 0, 0, 0], [], [])
    row = o.summary(Y, TARGET)
    assert row["asr"] is None and row["recall"] is None and row["cacc"] == 1.0
