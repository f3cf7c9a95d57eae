"""`--threshold-file` on `stream-guard score` and `replay`: a ThresholdUpdate with length buckets and a
confidence gate, as `stream-guard calibrate --output` writes it, judges every text exactly as
`defender.set_threshold(threshold_from_update(update))` does (the worker's threshold listener), and bad
files, another model's update or both threshold flags fail with one line and exit 2."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.calibrate.job import write_update
from consumers.cli.app import app
from consumers.pipeline.thresholds import threshold_from_update
from consumers.worker.update_listener import THRESHOLDS, UpdateSelector
from schemas import CalibrationSummary, LengthBucket, ThresholdUpdate, encode
from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings

WORDS = ["the", "film", "was", "a", "quiet", "delight", "with", "sharp", "writing", "warm", "plot", "drifts"]
TEXTS = [" ".join(WORDS[(3 * i) % len(WORDS) :] + WORDS)[: 6 + 9 * i] for i in range(12)]
SUMMARY = CalibrationSummary(dataset="test", n_texts=12, score_mean=0.0, score_std=1.0)


def _defender(model_dir: Path) -> Defender:
    """The defender the commands build: the same settings (with STREAM_GUARD_CONFIRM=false, which
    tests/consumers/conftest.py sets for every test, but not yet for a module's fixtures)."""
    settings = DefenderSettings(model=str(model_dir), device="cpu", confirm=False)
    return Defender(load_classifier(model_dir, device="cpu", max_length=settings.max_length), settings)


@pytest.fixture(scope="module")
def case(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An update under which the per-length threshold and the confidence gate both decide flags: short
    texts face a bucket below all their scores, gated at a confidence between theirs; long texts face
    `value`, above every score. So a static threshold, or no gate, would flag other texts."""
    defender = _defender(tiny_bert_dir)
    plain = defender.judge(TEXTS, [str(i) for i in range(len(TEXTS))])
    lengths = sorted(v.n_tokens for v in plain)
    edge = lengths[len(lengths) // 2]
    short = [v for v in plain if v.n_tokens <= edge]
    confidences = sorted(max(v.probabilities) for v in short)
    gap, gate = max((b - a, (a + b) / 2) for a, b in pairwise(confidences))
    assert gap > 1e-4, confidences  # a gate clear of every confidence: batch shapes cannot flip it
    update = ThresholdUpdate(
        model_id=defender.model_id,
        version="20260101T000000.000000Z-test",
        value=max(v.anomaly_score for v in plain) + 1.0,
        percentile=80.0,
        by_length=[LengthBucket(max_tokens=edge, value=min(v.anomaly_score for v in short) - 0.01)],
        min_confidence=gate,
        calibration=SUMMARY,
        created_at="2026-01-01T00:00:00Z",
    )
    path = tmp_path_factory.mktemp("threshold-file") / "threshold.json"
    write_update(update, path)  # what `stream-guard calibrate --output` writes
    threshold = threshold_from_update(update)
    worker = UpdateSelector(THRESHOLDS, defender.model_id).offer(encode(update))
    assert worker is not None and worker[0] == threshold  # the worker's listener applies this one
    defender.set_threshold(threshold)
    expected = {v.id: v for v in defender.judge(TEXTS, [str(i) for i in range(len(TEXTS))])}
    flagged = {i for i, v in expected.items() if v.flagged}
    assert flagged and len(flagged) < len(short) < len(TEXTS)  # the gate held some short texts back
    assert len({v.threshold for v in expected.values()}) == 2  # the bucket and the value both apply
    return {"model": str(tiny_bert_dir), "path": path, "update": update, "expected": expected}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def assert_judged_as_expected(records: dict[str, dict[str, Any]], case: dict[str, Any]) -> None:
    expected = case["expected"]
    assert sorted(records) == sorted(expected)
    for key, verdict in expected.items():
        record = records[key]
        assert record["threshold"] == pytest.approx(verdict.threshold), key
        assert record["flagged"] is verdict.flagged, key
        assert record["threshold_version"] == case["update"].version, key
        assert record["min_confidence"] == case["update"].min_confidence, key


def test_score_applies_the_file_as_the_worker_does(case, tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_bytes(b"".join(orjson.dumps({"id": str(i), "text": t}) + b"\n" for i, t in enumerate(TEXTS)))
    result = invoke(
        "score", "-m", case["model"], "--device", "cpu", "--input", str(texts), "--json",
        "--threshold-file", str(case["path"]),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = {r["id"]: r for r in map(orjson.loads, result.stdout.splitlines())}
    assert_judged_as_expected(records, case)


def test_replay_applies_the_file_as_the_worker_does(case, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"id": str(i), "text": t}) + b"\n" for i, t in enumerate(TEXTS)))
    result = invoke(
        "replay", "-m", case["model"], "--device", "cpu", "--no-progress", "--input", str(source),
        "--output", str(out), "--threshold-file", str(case["path"]),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = {r["id"]: r for r in map(orjson.loads, out.read_bytes().splitlines())}
    assert_judged_as_expected(records, case)


@pytest.mark.parametrize("flag", ["--compare-threshold-file", "--compare"])
def test_replay_compares_against_a_threshold_file(case, tmp_path, flag):
    source, out, found = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "disagreements.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"id": str(i), "text": t}) + b"\n" for i, t in enumerate(TEXTS)))
    result = invoke(
        "replay", "-m", case["model"], "--device", "cpu", "--no-progress", "--input", str(source),
        "--output", str(out), "-t", "1e9", flag, str(case["path"]), "--disagreements", str(found),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    disagreements = [orjson.loads(line) for line in found.read_bytes().splitlines()]
    flagged = {i for i, v in case["expected"].items() if v.flagged}
    assert {d["id"] for d in disagreements if "flag" in d["kinds"]} == flagged  # A flags nothing
    assert all(d["b"]["flagged"] for d in disagreements)


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _write(tmp_path: Path, update: dict[str, Any], raw_value: bytes | None = None) -> Path:
    path = tmp_path / "bad.json"
    data = orjson.dumps(update)
    path.write_bytes(data if raw_value is None else data.replace(b'"PLACEHOLDER"', raw_value))
    return path


@pytest.mark.parametrize("command", ["score", "replay"])
def test_bad_threshold_files_fail_with_one_line(case, tmp_path, command):
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps({"id": "a", "text": "a fine film"}) + b"\n")
    base = [command, "-m", case["model"], "--device", "cpu", "--input", str(source)]
    base += ["--output", str(tmp_path / "out.jsonl"), "--no-progress"] if command == "replay" else []
    wire = case["update"].model_dump(mode="json")
    nan = _write(tmp_path, {**wire, "value": "PLACEHOLDER"}, b"NaN")
    assert "not found" in _one_error_line(invoke(*base, "--threshold-file", str(tmp_path / "none.json")))
    assert "invalid threshold file" in _one_error_line(invoke(*base, "--threshold-file", str(nan)))
    out_of_range = _write(tmp_path, {**wire, "min_confidence": 1.5})
    assert "min_confidence" in _one_error_line(invoke(*base, "--threshold-file", str(out_of_range)))
    both = _one_error_line(invoke(*base, "-t", "0.5", "--threshold-file", str(case["path"])))
    assert "--threshold or --threshold-file, not both" in both
    other = _write(tmp_path, {**wire, "model_id": "another-model"})
    line = _one_error_line(invoke(*base, "--threshold-file", str(other)))
    assert "'another-model', not the loaded model" in line and "--threshold VALUE" in line
    assert not (tmp_path / "out.jsonl").exists()
