"""ThresholdUpdate -> Threshold, and threshold files as `stream-guard calibrate --output` writes them: read
back exactly, applied as the worker's listener applies them, refused with one line when unusable."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consumers.calibrate.job import write_update
from consumers.pipeline.thresholds import (
    ThresholdFileError,
    learn_rule_for,
    read_threshold_file,
    threshold_for_model,
    threshold_from_update,
)
from consumers.worker.update_listener import THRESHOLDS, UpdateSelector
from schemas import CalibrationSummary, LearnBar, LengthBucket, ThresholdUpdate, encode
from stream_guard.triggers.rule import LearnRule

SUMMARY = CalibrationSummary(dataset="d", n_texts=10, score_mean=0.1, score_std=0.01, quantiles={"50": 0.1})


def _update(**changes: object) -> ThresholdUpdate:
    fields: dict[str, object] = {
        "model_id": "model-a",
        "version": "v7",
        "value": 0.3,
        "percentile": 80.0,
        "by_length": [LengthBucket(max_tokens=16, value=0.1), LengthBucket(max_tokens=64, value=0.2)],
        "min_confidence": 0.6,
        "calibration": SUMMARY,
        "created_at": "2026-01-01T00:00:00Z",
    }
    return ThresholdUpdate(**{**fields, **changes})  # type: ignore[arg-type]


def _written(tmp_path: Path, update: ThresholdUpdate) -> Path:
    path = tmp_path / "threshold.json"
    write_update(update, path)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ThresholdFileError) as caught:
        read_threshold_file(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_a_calibrate_output_reads_back_as_the_worker_applies_it(tmp_path):
    update = _update()
    read = read_threshold_file(_written(tmp_path, update))
    assert read == update
    threshold = threshold_for_model(read, "model-a")
    assert threshold == threshold_from_update(update)
    assert threshold.by_length == ((16, 0.1), (64, 0.2)) and threshold.value == 0.3
    assert (threshold.version, threshold.min_confidence) == ("v7", 0.6)
    assert [threshold.for_length(n) for n in (1, 16, 17, 64, 65)] == [0.1, 0.1, 0.2, 0.2, 0.3]
    worker = UpdateSelector(THRESHOLDS, "model-a").offer(encode(update))  # what the worker's listener applies
    assert worker is not None and worker[0] == threshold


def test_the_confidence_gate_and_no_buckets():
    threshold = threshold_from_update(_update(min_confidence=0.87, by_length=None))
    assert (threshold.value, threshold.min_confidence, threshold.by_length) == (0.3, 0.87, ())
    assert threshold.passes_gate(0.9) and not threshold.passes_gate(0.5)
    no_gate = threshold_from_update(_update(min_confidence=None))
    assert no_gate.min_confidence is None and no_gate.passes_gate(0.0)


def test_an_update_for_another_model_is_refused():
    with pytest.raises(ThresholdFileError, match="'model-a', not the loaded model 'model-b'"):
        threshold_for_model(_update(), "model-b", source="threshold file t.json")


def test_a_missing_file_is_one_line(tmp_path):
    assert "not found" in _error(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("field", "raw", "reason"),
    [
        ("value", b"NaN", "not JSON"),  # NaN is not JSON: orjson refuses it
        ("value", b"1e400", "not JSON"),  # infinite as a double
        ("value", b'"NaN"', "value"),  # as a string: not a finite number
        ("percentile", b"150", "percentile"),
        ("min_confidence", b"1.5", "min_confidence"),
        ("by_length", b'[{"max_tokens": 64, "value": 0.2}, {"max_tokens": 16, "value": 0.1}]', "ascending"),
        ("model_id", b'""', "model_id"),
        # a measured learner bar under 0.5 would let a flood get ordinary words learned
        (
            "learn_bar",
            b'{"min_insertion_rate_unseen": 0.2, "ceiling": 0.1, "words": 3, "margin": 0.1}',
            "learn_bar",
        ),
    ],
)
def test_invalid_values_are_one_line(tmp_path, field, raw, reason):
    text = orjson.dumps(_update().model_dump(mode="json"))
    data = orjson.loads(text)
    data[field] = "PLACEHOLDER"
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps(data).replace(b'"PLACEHOLDER"', raw))
    message = _error(path)
    assert message.startswith(f"invalid threshold file {path}: ") and reason in message, message


@pytest.mark.parametrize("content", [b"", b"[]", b"{}", b"{not json", b"\xff\xfe"])
def test_files_that_are_no_update_are_one_line(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert _error(path).startswith(f"invalid threshold file {path}: ")


LOW_BAR = LearnBar(min_insertion_rate_unseen=0.7, ceiling=0.55, strongest="flimsy", words=40, margin=0.15)
HIGH_BAR = LearnBar(
    min_insertion_rate_unseen=0.98, min_insertion_rate=0.98, ceiling=0.93, strongest="exquisitely", words=90,
    margin=0.1,
)  # fmt: skip


def test_a_measured_learner_bar_sets_the_rule_unless_the_environment_does(tmp_path, monkeypatch) -> None:
    for name in ("MIN_INSERTION_RATE", "MIN_INSERTION_RATE_UNSEEN"):
        monkeypatch.delenv(f"STREAM_GUARD_LEARN_{name}", raising=False)
    assert learn_rule_for(None) == LearnRule() == learn_rule_for(_update())
    low = read_threshold_file(_written(tmp_path, _update(learn_bar=LOW_BAR)))  # it survives the file
    assert low.learn_bar == LOW_BAR
    rule = learn_rule_for(low)
    assert (rule.min_insertion_rate_unseen, rule.min_insertion_rate) == (0.7, LearnRule().min_insertion_rate)
    assert rule.min_flips == LearnRule().min_flips
    high = learn_rule_for(_update(learn_bar=HIGH_BAR))
    assert (high.min_insertion_rate_unseen, high.min_insertion_rate) == (0.98, 0.98)
    monkeypatch.setenv("STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN", "0.85")  # the operator's word wins
    assert learn_rule_for(low).min_insertion_rate_unseen == 0.85
    assert learn_rule_for(_update(learn_bar=HIGH_BAR)).min_insertion_rate == 0.98
