"""`stream-guard triggers check`: the learner's tests on a real (tiny) model and real tokenizer, on demand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.triggers.insertion import InsertionTest
from tests.consumers.cli.test_triggers import invoke, ok, one_error_line

TEXTS = [
    f"the film number {i} has a story about people and {w}" for i, w in enumerate("abcdefghijklmnopqrst")
]


def _clean(tmp_path: Path) -> Path:
    path = tmp_path / "clean.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in TEXTS))
    return path


def test_json_rows_are_the_learners_insertion_test(tmp_path: Path, tiny_bert_dir: Path) -> None:
    clean = _clean(tmp_path)
    out = ok("triggers", "check", "CF", "the film", "--model", str(tiny_bert_dir), "--device", "cpu",
             "--clean-texts", str(clean), "--json")  # fmt: skip
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [(r["text"], r["target_label"]) for r in rows] == [
        ("cf", 0),
        ("cf", 1),
        ("the film", 0),
        ("the film", 1),
    ]
    assert [r["clean_rate"] for r in rows] == [0.0, 0.0, 1.0, 1.0]
    assert not rows[2]["would_learn"] and "of clean texts" in rows[2]["verdict"]
    # the same numbers as the learner's test on the same model and texts
    test = InsertionTest(TEXTS, Defender(load_classifier(tiny_bert_dir, device="cpu")).predict_proba)
    for row in rows:
        result = test(row["text"], row["target_label"])
        assert (row["insertion_flipped"], row["insertion_texts"]) == (result.flipped, result.eligible)
    labels = test.clean_labels
    assert rows[0]["insertion_texts"] == int(np.sum(labels != 0))


def test_a_table_and_clear_errors(tmp_path: Path, tiny_bert_dir: Path) -> None:
    clean = _clean(tmp_path)
    model = ["--model", str(tiny_bert_dir), "--device", "cpu"]
    table = ok("triggers", "check", "cf", *model, "--clean-texts", str(clean), "--target-label", "1")
    assert "cf" in table and ("not learned" in table or "would be learned" in table)
    line = one_error_line(
        invoke("triggers", "check", "cf", *model, "--clean-texts", str(clean), "--target-label", "7")
    )
    assert "--target-label" in line
    line = one_error_line(
        invoke("triggers", "check", "cf", *model, "--clean-texts", str(tmp_path / "none.jsonl"))
    )
    assert "not found" in line
