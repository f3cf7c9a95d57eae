"""Issue 15: every loading error of the CLI is one ``error:`` line and exit 2, never a traceback.

Each case failed before: a model directory without tokenizer files loaded silently (exit 0, every word
[UNK]); a corrupt ``model.safetensors`` and ``score --threshold nan`` printed a traceback (exit 1);
``run --create-topics`` with no broker printed a KafkaException traceback (exit 1).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from consumers.devtools.broker import free_port
from tests.reliability.operations_support import lines, run_cli
from tests.stream_guard.tiny_models import build_tiny_model

TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("bert", tmp_path_factory.mktemp("reliability-tiny-bert"))


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    found = lines(stderr)
    assert len(found) == 1, stderr[-3000:]
    assert found[0].startswith("error: "), found
    return found[0]


def test_a_model_without_its_tokenizer_is_refused(model_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare, ignore=lambda _d, names: [n for n in names if n in TOKENIZER])
    result = run_cli(["score", "--model", str(bare), "a fine film"], timeout=180)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-2000:])
    line = _one_error_line(result.stderr)
    assert "no tokenizer" in line and "tokenizer.json" in line and str(bare) in line
    assert result.stdout == ""


def test_corrupt_weights_are_one_line(model_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_dir, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    result = run_cli(["score", "--model", str(corrupt), "a fine film"], timeout=180)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "cannot load classifier" in _one_error_line(result.stderr)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_threshold_that_is_not_a_number_is_one_line(model_dir: Path, value: str) -> None:
    result = run_cli(["score", "--model", str(model_dir), f"--threshold={value}", "a fine film"], timeout=180)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "threshold" in _one_error_line(result.stderr)


def test_create_topics_without_a_broker_is_one_line(model_dir: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = run_cli(
        ["run", "--bootstrap-servers", closed, "--model", str(model_dir), "--create-topics"], timeout=120
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    line = _one_error_line(result.stderr)
    assert f"cannot create topics on {closed}" in line
    assert time.monotonic() - started < 60  # ensure_topics' own 10 s bound, plus the start
