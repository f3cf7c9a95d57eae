"""Reproducible performance numbers: plain classification vs batched vs per-text X-GRAAD, and the pipeline.

`run_bench(classifier, settings, BenchConfig(...))` returns a `BenchReport`; `report_dict` turns it into
the JSON object of `stream-guard bench --json`, `render_table` into the table. Kafka-free: the broker
part is a runner that `consumers.bench_pipeline` registers (`register_pipeline_runner`).
"""

from stream_guard.bench.pipeline import PipelineResult, register_pipeline_runner
from stream_guard.bench.report import render_table, report_dict
from stream_guard.bench.runner import BenchConfig, BenchReport, run_bench

__all__ = [
    "BenchConfig",
    "BenchReport",
    "PipelineResult",
    "register_pipeline_runner",
    "render_table",
    "report_dict",
    "run_bench",
]
