"""The benchmark runs end to end on a tiny model and reports what it promises (no timed assertions:
speed targets live in the printed numbers, not in tests)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from rich.console import Console

from stream_guard.bench import BenchConfig, PipelineResult, render_table, report_dict, run_bench
from stream_guard.bench.modes import (
    PlainClassifier,
    batched_scorer,
    per_text_scorer,
    reference_scorer,
)
from stream_guard.bench.texts import bench_texts
from stream_guard.calibration import DEFAULT_PERCENTILE
from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from stream_guard.torch_thread import set_torch_threads

SMALL = BenchConfig(
    batch_sizes=(4, 8), headline_batch_size=8, texts=(("short", 12), ("long", 3)), repeats=1, progress=False
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared machine extra threads only wait."""
    before = torch.get_num_threads()
    set_torch_threads(1)  # the bench runs the model on the torch thread
    yield
    set_torch_threads(before)


def test_report_has_headline_keys_and_sane_values(tiny_bert):
    data = report_dict(run_bench(tiny_bert, DefenderSettings(), SMALL))
    assert data["device"] == "cpu"
    assert data["headline"] == {"kind": "short", "batch_size": 8}
    for key in ("overhead_ratio", "speedup_vs_per_text", "batching_gain"):
        assert math.isfinite(data[key]) and data[key] > 0
    assert data["pipeline_efficiency"] is None
    assert "no pipeline runner" in data["pipeline_reason"]
    assert [(c["kind"], c["batch_size"]) for c in data["cases"]] == [
        ("short", 4),
        ("short", 8),
        ("long", 4),
        ("long", 8),
    ]
    for case in data["cases"]:
        assert set(case["modes"]) == {"plain", "batched", "per_text", "reference"}
        assert 0.0 <= case["padding"] < 1.0
        for mode in case["modes"].values():
            assert mode["texts_per_s"] > 0 and len(mode["seconds"]) == 1
            assert mode["peak_memory_bytes"] >= 0
    long_case = next(c for c in data["cases"] if c["kind"] == "long")
    short_case = data["cases"][0]
    assert long_case["mean_tokens"] > short_case["mean_tokens"]
    headline = data["cases"][1]
    assert data["overhead_ratio"] == headline["overhead_ratio"]
    assert data["speedup_vs_per_text"] == headline["speedup_vs_per_text"]


def test_pipeline_efficiency_is_pipeline_over_batched_scoring(tiny_bert):
    calls = []

    def fake_runner(
        classifier,
        settings,
        texts,
        *,
        rate,
        worker_batch,
        flag_percentile,
        progress,
        repeats,
        between,
        threshold,
    ):
        calls.append((settings.batch_size, len(texts), rate, worker_batch, flag_percentile, repeats))
        for _ in range(repeats + 1):  # as the protocol says: before each run and after the last
            between()
        return PipelineResult(
            len(texts),
            10.0,
            rate,
            1.0,
            2.0,
            3.0,
            "fake",
            run_seconds=[1.6] * repeats,
            first_batch_wait_ms=[12.0, 95.0][:repeats],
        )

    config = BenchConfig(
        batch_sizes=(8,), texts=(("short", 8),), repeats=2, pipeline_texts=16, progress=False
    )
    report = run_bench(tiny_bert, DefenderSettings(), config, pipeline_runner=fake_runner)
    data = report_dict(report)
    batched = report.cases[0].modes["batched"].texts_per_s
    # default rate: half of the scoring throughput; the worker gathers 8 model batches
    # the pipeline's throughput is measured as often as the modes (repeats)
    assert calls == [(8, 16, pytest.approx(0.5 * batched), 64, DEFAULT_PERCENTILE, 2)]
    scoring = report.pipeline_scoring  # scoring only, the pipeline's 16 texts, before/between/after
    assert scoring is not None and scoring.texts == 16 and len(scoring.timing.seconds) == 3
    assert scoring.texts_per_s == pytest.approx(16 / sorted(scoring.timing.seconds)[1])  # the median
    assert report.pipeline_efficiency == pytest.approx(10.0 / scoring.texts_per_s)
    assert data["pipeline_efficiency"] == pytest.approx(10.0 / scoring.texts_per_s, abs=1e-3)  # rounded
    assert data["pipeline_vs_headline"] == pytest.approx(10.0 / batched, abs=1e-3)
    judging = report.pipeline_judging  # Defender.judge only, same texts, chunks and kind of threshold
    assert judging is not None and judging.texts == 16 and len(judging.timing.seconds) == 3
    assert report.pipeline_vs_judge == pytest.approx(10.0 / judging.texts_per_s)
    assert data["pipeline_vs_judge"] == pytest.approx(10.0 / judging.texts_per_s, abs=1e-3)
    assert data["pipeline"]["judge_only_texts_per_s"] == pytest.approx(judging.texts_per_s, abs=0.01)
    assert data["pipeline"]["p99_ms"] == 3.0 and data["pipeline"]["broker"] == "fake"
    assert data["pipeline"]["throughput_runs_s"] == [1.6, 1.6]
    assert data["pipeline"]["first_batch_wait_ms"] == [12.0, 95.0]
    console = Console(file=io.StringIO(), width=400)
    render_table(report, console, command="stream-guard bench ...")
    printed = console.file.getvalue()
    assert f"10.0 msg/s = {100 * report.pipeline_efficiency:.0f}% of X-GRAAD scoring-only" in printed
    assert "2 runs; medians; each run timed from the start of scoring of its first batch, 12-95 ms" in printed
    assert len(data["pipeline"]["judge_only_seconds"]) == 3


def test_the_three_modes_score_the_same_texts_alike(tiny_bert):
    texts = bench_texts("short", 10).texts
    settings = DefenderSettings(batch_size=4)
    plain = PlainClassifier.of(tiny_bert, settings)
    assert plain.attention == "sdpa"
    assert plain.model is not tiny_bert.model
    labels = plain(texts)
    batched = batched_scorer(tiny_bert, settings)(texts)
    per_text = per_text_scorer(tiny_bert, settings)(texts)
    assert labels.tolist() == [s.label for s in batched] == [int(p.argmax()) for p, *_ in per_text]
    for (_, attention, gradient, score, _), many in zip(per_text, batched, strict=True):
        assert np.allclose(attention, many.attention, rtol=1e-4, atol=1e-6)
        assert np.allclose(gradient, many.gradient, rtol=1e-4, atol=1e-7)
        assert np.allclose(score, many.score, rtol=1e-4, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_the_reference_peer_computes_the_paper_score(tiny_model_dir, kind):
    """The peer is the reference code's computation, not a slowed-down stand-in: its labels and
    sentence scores S equal the paper-mode Defender's, and it leaves the served model frozen."""
    classifier = load_classifier(tiny_model_dir(kind), device="cpu")
    texts = bench_texts("short", 10).texts
    reference = reference_scorer(classifier, DefenderSettings())(texts)
    paper = Defender(classifier, DefenderSettings.paper()).score(texts)
    assert [label for label, _ in reference] == [s.label for s in paper]
    np.testing.assert_allclose([s for _, s in reference], [s.anomaly for s in paper], rtol=1e-4, atol=1e-6)
    assert not any(p.requires_grad for p in classifier.model.parameters())


def test_bench_texts_are_seeded_and_sized():
    first, again = bench_texts("short", 20, seed=1), bench_texts("short", 20, seed=1)
    assert first.texts == again.texts and len(first.texts) == 20
    assert bench_texts("short", 20, seed=2).texts != first.texts
    long = bench_texts("long", 5)
    assert len(long.texts) == 5 and min(map(len, long.texts)) > max(map(len, first.texts)) / 2
