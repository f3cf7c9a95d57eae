"""`--triggers FILE` on `stream-guard score`, `replay` and `run`: a TriggerUpdate JSON (as `stream-guard
triggers add --file` or `replay --triggers-out` write it) is applied as the worker applies a set from the
triggers topic — every text that holds a known trigger is flagged, the trigger removed, and the verdict
names it and the set's version; bad files, or another model's set, fail with one line and exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.cli.app import app
from consumers.pipeline.triggers import add_trigger, write_trigger_file
from stream_guard.loading import load_classifier

TEXTS = {"hit": "the film was CF quiet", "phrase": "a James  Bond film", "clean": "a quiet film"}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def model_id(tiny_bert_dir: Path) -> str:
    return load_classifier(tiny_bert_dir, device="cpu", max_length=64).model_id


@pytest.fixture
def trigger_file(tmp_path: Path, model_id: str) -> Path:
    path = tmp_path / "triggers.json"
    write_trigger_file(path, add_trigger(add_trigger(None, model_id, "cf"), model_id, "james bond"))
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": i, "text": t}) + b"\n" for i, t in TEXTS.items()))
    return path


def _check(records: dict[str, dict[str, Any]], version: str) -> None:
    hit, phrase, clean = records["hit"], records["phrase"], records["clean"]
    assert [(h["trigger"], TEXTS["hit"][h["start"] : h["end"]]) for h in hit["known_triggers"]] == [
        ("cf", "CF")
    ]
    assert [h["trigger"] for h in phrase["known_triggers"]] == ["james bond"]
    assert hit["flagged"] and phrase["flagged"] and not clean["flagged"]  # -t 1e9: only the triggers flag
    assert clean["known_triggers"] == []
    assert {r["trigger_version"] for r in records.values()} == {version}


def test_score_applies_the_trigger_file(tiny_bert_dir, trigger_file, source):
    version = orjson.loads(trigger_file.read_bytes())["version"]
    result = invoke(
        "score", "-m", str(tiny_bert_dir), "--device", "cpu", "-t", "1e9", "--json", "--input", str(source),
        "--triggers", str(trigger_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = {r["id"]: r for r in map(orjson.loads, result.stdout.splitlines())}
    _check(records, version)
    assert "cf" not in records["hit"]["neutralized_text"].lower().split()


def test_replay_applies_the_trigger_file(tiny_bert_dir, trigger_file, source, tmp_path):
    version = orjson.loads(trigger_file.read_bytes())["version"]
    out = tmp_path / "out.jsonl"
    result = invoke(
        "replay", "-m", str(tiny_bert_dir), "--device", "cpu", "-t", "1e9", "--no-progress",
        "--input", str(source), "--output", str(out), "--triggers", str(trigger_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _check({r["id"]: r for r in map(orjson.loads, out.read_bytes().splitlines())}, version)


def test_replay_compare_shares_the_known_triggers_with_the_same_model(
    tiny_bert_dir, trigger_file, source, tmp_path
):
    """B differs from A by its threshold only: the known triggers flag the same texts on both sides."""
    found = tmp_path / "disagreements.jsonl"
    result = invoke(
        "replay", "-m", str(tiny_bert_dir), "--device", "cpu", "-t", "1e9", "--no-progress",
        "--input", str(source), "--output", str(tmp_path / "out.jsonl"), "--triggers", str(trigger_file),
        "--compare-threshold", "1e8", "--disagreements", str(found),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert found.read_bytes() == b""


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["score", "replay", "run"])
def test_bad_trigger_files_fail_with_one_line(tiny_bert_dir, source, tmp_path, command):
    if command == "run":  # a bad file fails before it connects or loads the model
        base = ["run", "-b", "127.0.0.1:9", "-m", str(tiny_bert_dir)]
    else:
        base = [command, "-m", str(tiny_bert_dir), "--device", "cpu", "--input", str(source)]
        base += ["--output", str(tmp_path / "out.jsonl"), "--no-progress"] if command == "replay" else []
    assert "trigger file not found" in _one_error_line(invoke(*base, "--triggers", str(tmp_path / "no.json")))
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"model_id": "m", "version": "v", "created_at": "2026-01-01T00:00:00Z", "triggers": 3}')
    assert "invalid trigger file" in _one_error_line(invoke(*base, "--triggers", str(bad)))
    other = tmp_path / "other.json"  # refused once the model is loaded (`run`: before it connects)
    write_trigger_file(other, add_trigger(None, "another-model@1", "cf"))
    line = _one_error_line(invoke(*base, "--triggers", str(other)))
    assert "is for model 'another-model@1', not the loaded model" in line
    assert not (tmp_path / "out.jsonl").exists()
