"""Reproducible performance numbers: plain classification vs batched vs per-text X-GRAAD, and the pipeline.

`run_bench(classifier, settings, BenchConfig(...))` returns a `BenchReport`; `report_dict` turns it into
the JSON object of `stream-guard bench --json`, `render_table` into the table. Kafka-free: the broker
part is a runner passed in (`run_bench(..., pipeline_runner=consumers.bench.pipeline_runner.run_pipeline)`).
"""

from stream_guard.lazy_exports import lazy_getattr

_EXPORTS = {  # imported on first use: `import stream_guard.bench` must not pull in torch
    "BenchConfig": "stream_guard.bench.runner",
    "BenchReport": "stream_guard.bench.runner",
    "run_bench": "stream_guard.bench.runner",
    "PipelineResult": "stream_guard.bench.pipeline",
    "render_table": "stream_guard.bench.report",
    "report_dict": "stream_guard.bench.report",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
