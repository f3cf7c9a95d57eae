"""The bench's pipeline runner drives the real worker through the broker and reports sane numbers."""

from __future__ import annotations

import pytest
import torch

from consumers.bench import pipeline_runner as bench_pipeline
from stream_guard.bench import BenchConfig, report_dict, run_bench
from stream_guard.bench.texts import bench_texts
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from stream_guard.torch_thread import set_torch_threads
from tests.stream_guard.tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_classifier(build_tiny_model("bert", tmp_path_factory.mktemp("bench-tiny")), device="cpu")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    set_torch_threads(1)  # the bench runs the model on the torch thread
    yield
    set_torch_threads(before)


def test_pipeline_numbers_through_the_broker(tiny, kafka_bootstrap, monkeypatch):
    monkeypatch.setenv(bench_pipeline.BOOTSTRAP_ENV, kafka_bootstrap)
    texts = bench_texts("short", 48, seed=5).texts  # the calibration takes other texts (seed 1)
    idle_calls = []
    result = bench_pipeline.run_pipeline(
        tiny,
        DefenderSettings(batch_size=8),
        texts,
        rate=40.0,
        worker_batch=16,
        flag_percentile=95.0,
        progress=False,
        repeats=2,
        between=lambda: idle_calls.append(True),
    )
    assert len(idle_calls) == 3  # before each throughput run and after the last
    assert result.messages == 48 and len(result.run_seconds) == 2 and min(result.run_seconds) > 0
    assert len(result.first_batch_wait_ms) == 2 and min(result.first_batch_wait_ms) >= 0
    assert result.messages_per_s == pytest.approx(48 / (sum(result.run_seconds) / 2))  # median of 2
    assert result.judge_share > 0  # (work started while the topic was filled can make it exceed 1)
    assert result.broker == kafka_bootstrap and result.input_rate == 40.0 and result.worker_batch == 16
    assert 0 <= result.flagged < 12  # the 95th percentile of other texts' scores flags few, if any
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms < 60_000


def test_bench_reports_pipeline_efficiency(tiny, kafka_bootstrap, monkeypatch):
    monkeypatch.setenv(bench_pipeline.BOOTSTRAP_ENV, kafka_bootstrap)
    config = BenchConfig(
        batch_sizes=(8,),
        texts=(("short", 16),),
        repeats=1,
        pipeline_texts=32,
        pipeline_rate=30.0,
        progress=False,
    )
    data = report_dict(
        run_bench(tiny, DefenderSettings(), config, pipeline_runner=bench_pipeline.run_pipeline)
    )
    assert data["pipeline_reason"] is None
    assert data["pipeline_efficiency"] > 0
    assert data["pipeline"]["messages"] == 32 and data["pipeline"]["p99_ms"] > 0
