"""`calibrate --scan-bar` (consumers.calibrate.learn_bar): the learner's insertion bar measured on the
model (a real tiny one, real tokenizer) is the scan's, written into the threshold update and shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.pipeline.thresholds import learn_rule_for, read_threshold_file
from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.triggers.bar_scan import scan_bar
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.rule import LearnRule
from tests.consumers.cli.conftest import _restore_logging  # noqa: F401  (autouse)
from tests.consumers.cli.test_trigger_bar import TRAFFIC, _traffic
from tests.consumers.cli.test_trigger_check import TEXTS, _clean
from tests.consumers.cli.test_triggers import invoke, ok, one_error_line
from tests.stream_guard.tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("bert", tmp_path_factory.mktemp("scan-bar-tiny-bert"))


def test_calibrate_writes_the_scanned_bar_into_the_update(
    tmp_path: Path, tiny_bert_dir: Path, monkeypatch
) -> None:
    for name in ("MIN_INSERTION_RATE", "MIN_INSERTION_RATE_UNSEEN"):
        monkeypatch.delenv(f"STREAM_GUARD_LEARN_{name}", raising=False)
    clean, traffic, out = _clean(tmp_path), _traffic(tmp_path), tmp_path / "threshold.json"
    model = ["--model", str(tiny_bert_dir), "--device", "cpu"]
    printed = ok(
        "calibrate", *model, "--dataset", str(clean), "--scan-bar", str(traffic), "--output", str(out)
    )
    update = read_threshold_file(out)
    bar = update.learn_bar
    assert bar is not None
    test = InsertionTest(TEXTS, Defender(load_classifier(tiny_bert_dir, device="cpu")).predict_proba)
    scan = scan_bar(test, TRAFFIC, LearnRule())
    values = scan.rule_values(LearnRule())
    assert bar.min_insertion_rate_unseen == values["min_insertion_rate_unseen"]
    assert bar.min_insertion_rate == values.get("min_insertion_rate")
    assert (bar.ceiling, bar.words) == (scan.ceiling, scan.words) == (scan.ceiling, 4)
    assert bar.strongest == (scan.tested[0].word if scan.tested else None)
    assert f"{bar.words:,} ordinary words scanned" in printed
    assert learn_rule_for(update).min_insertion_rate_unseen == bar.min_insertion_rate_unseen
    plain = tmp_path / "plain.json"
    ok("calibrate", *model, "--dataset", str(clean), "--output", str(plain))
    assert read_threshold_file(plain).learn_bar is None  # opt-in: without --scan-bar the rule's own bars


def test_a_missing_sample_is_one_line(tmp_path: Path, tiny_bert_dir: Path) -> None:
    model = ["--model", str(tiny_bert_dir), "--device", "cpu"]
    missing = invoke("calibrate", *model, "--dataset", str(_clean(tmp_path)), "--scan-bar", "nope.jsonl")
    assert "not found" in one_error_line(missing)
