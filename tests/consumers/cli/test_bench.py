"""`stream-guard bench` on a tiny model: the JSON and table outputs, bad options, and the broker pipeline
runner it hands to the core's benchmark (replaced here by a fake, so no broker runs)."""

from __future__ import annotations

import orjson
import pytest
import torch
from typer.testing import CliRunner

from consumers.bench import pipeline_runner
from consumers.cli.app import app
from stream_guard.bench import PipelineResult
from stream_guard.torch_thread import set_torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    set_torch_threads(1)  # the bench runs the model on the torch thread
    yield
    set_torch_threads(before)


def test_cli_prints_and_writes_json_with_the_pipeline_runner_it_passes(tiny_bert_dir, tmp_path, monkeypatch):
    calls = []

    def fake_runner(classifier, settings, texts, *, repeats, between, **_):
        calls.append(len(texts))
        for _ in range(repeats + 1):  # as the protocol says: before each run and after the last
            between()
        return PipelineResult(len(texts), 10.0, 5.0, 1.0, 2.0, 3.0, "fake", run_seconds=[1.0] * repeats)

    monkeypatch.setattr(pipeline_runner, "run_pipeline", fake_runner)
    out = tmp_path / "bench.json"
    args = ["bench", "--model", str(tiny_bert_dir), "--device", "cpu", "--short", "8", "--long", "0"]
    args += ["--batch-sizes", "4", "--headline-batch", "4", "--repeats", "1", "--json", "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--pipeline-texts", "8", "--output", str(out)])
    assert result.exit_code == 0, result.output
    printed = orjson.loads(result.stdout)
    assert printed == orjson.loads(out.read_bytes())
    assert {"overhead_ratio", "speedup_vs_per_text", "pipeline_efficiency", "device"} <= set(printed)
    assert printed["command"].startswith("stream-guard bench --model ")
    assert calls == [8] and printed["pipeline"]["broker"] == "fake" and printed["pipeline_reason"] is None


def test_cli_table_and_bad_batch_sizes(tiny_bert_dir):
    base = ["bench", "--model", str(tiny_bert_dir), "--device", "cpu", "--repeats", "1"]
    result = CliRunner().invoke(
        app, [*base, "--short", "6", "--long", "0", "--batch-sizes", "3", "--no-progress", "--no-pipeline"]
    )
    assert result.exit_code == 0, result.output
    assert "2/1" in result.stdout and "not requested" in result.stdout
    bad = CliRunner().invoke(app, [*base, "--batch-sizes", "a,b"])
    assert bad.exit_code == 2 and "--batch-sizes" in bad.output
