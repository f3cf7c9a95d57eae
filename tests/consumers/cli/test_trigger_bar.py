"""`stream-guard triggers bar`: the learner's insertion test over a traffic sample's ordinary words, on a
real (tiny) model and real tokenizer."""

from __future__ import annotations

from pathlib import Path

import orjson

from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.triggers.bar_scan import scan_bar
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.rule import LearnRule
from tests.consumers.cli.test_trigger_check import TEXTS, _clean
from tests.consumers.cli.test_triggers import invoke, ok, one_error_line

TRAFFIC = [f"a {w} review of the {w} film" for w in ("zork", "quib", "blen", "zork", "quib", "plo")]


def _traffic(tmp_path: Path) -> Path:
    path = tmp_path / "traffic.txt"
    path.write_text("\n".join(TRAFFIC) + "\n")
    return path


def test_the_scan_is_the_learners_test_and_its_bar_is_written(tmp_path: Path, tiny_bert_dir: Path) -> None:
    clean, traffic, out = _clean(tmp_path), _traffic(tmp_path), tmp_path / "bar.json"
    model = ["--model", str(tiny_bert_dir), "--device", "cpu"]
    printed = ok("triggers", "bar", *model, "--clean-texts", str(clean), "--traffic", str(traffic),
                 "--exclude", "QUIB", "--output", str(out), "--json")  # fmt: skip
    scan = orjson.loads(printed.strip().splitlines()[-1])
    assert scan == orjson.loads(out.read_bytes())
    # the words of >= 2 traffic texts under the clean-rate bar: zork, and review and of (in no clean
    # text); quib left out, blen and plo in one text only, a / the / film in every clean text
    assert scan["words"] == 3 and scan["clean_texts"] == len(TEXTS)
    test = InsertionTest(TEXTS, Defender(load_classifier(tiny_bert_dir, device="cpu")).predict_proba)
    again = scan_bar(test, TRAFFIC, LearnRule(), exclude=["quib"])
    assert [(w["word"], w["target"], w["rate"]) for w in scan["tested"]] == [
        (w.word, w.target, w.rate) for w in again.tested
    ]
    assert scan["ceiling"] == again.ceiling and scan["safe_bar"] == again.safe_bar()
    assert scan["env"] == again.settings(LearnRule())
    table = ok("triggers", "bar", *model, "--clean-texts", str(clean), "--traffic", str(traffic))
    assert "STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN=" in table


def test_clear_errors(tmp_path: Path, tiny_bert_dir: Path) -> None:
    model = ["--model", str(tiny_bert_dir), "--device", "cpu"]
    missing = invoke(
        "triggers", "bar", *model, "--clean-texts", str(_clean(tmp_path)), "--traffic", "nope.jsonl"
    )
    assert "not found" in one_error_line(missing)
