"""`stream-guard triggers learn`: what it refuses before it starts (one line, exit 2): a threshold file
that is missing or for another model, and a bad STREAM_GUARD_LEARN_* value. The service itself is
tested on the real broker in tests/consumers/learn."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.calibrate.job import write_update
from schemas import CalibrationSummary, LearnBar, ThresholdUpdate
from tests.consumers.cli.test_trigger_check import _clean
from tests.consumers.cli.test_triggers import invoke, one_error_line


def _threshold_file(tmp_path: Path, model_id: str) -> Path:
    summary = CalibrationSummary(dataset="clean", n_texts=20, score_mean=0.1, score_std=0.1)
    bar = LearnBar(min_insertion_rate_unseen=0.7, ceiling=0.55, words=30, margin=0.15)
    update = ThresholdUpdate(model_id=model_id, version="v1", value=0.5, percentile=99.0, calibration=summary,
                             learn_bar=bar, created_at="2026-01-01T00:00:00Z")  # type: ignore[arg-type]  # fmt: skip
    path = tmp_path / "threshold.json"
    write_update(update, path)
    return path


def test_a_threshold_file_for_another_model_is_refused(tmp_path: Path, tiny_bert_dir: Path) -> None:
    model = ["--model", str(tiny_bert_dir), "--device", "cpu", "--clean-texts", str(_clean(tmp_path))]
    other = _threshold_file(tmp_path, "some-other-model")
    line = one_error_line(invoke("triggers", "learn", *model, "--threshold-file", str(other)))
    assert "some-other-model" in line
    missing = invoke("triggers", "learn", *model, "--threshold-file", str(tmp_path / "nope.json"))
    assert "nope.json" in one_error_line(missing)


def test_a_bad_rule_value_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN", "2")
    result = invoke("triggers", "learn", "--clean-texts", str(_clean(tmp_path)))
    assert "STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN" in one_error_line(result)
