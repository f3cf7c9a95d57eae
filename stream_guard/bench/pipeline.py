"""The broker part of the benchmark (consume -> score -> produce -> commit), as a runner passed in.

The core knows nothing of Kafka, so it only defines what a pipeline measurement returns and what a
runner looks like; ``consumers.bench.pipeline_runner.run_pipeline`` is one, which ``stream-guard bench``
passes to ``run_bench(..., pipeline_runner=...)``. Without one the pipeline numbers are null and the
report says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from stream_guard.torch_thread import run_on_torch_thread

if TYPE_CHECKING:  # importing this module loads no torch: only running a bench does
    from stream_guard.defender import Defender
    from stream_guard.loading import LoadedClassifier
    from stream_guard.settings import DefenderSettings


@dataclass
class PipelineResult:
    """What the pipeline run measured.

    messages_per_s:  throughput with the input topic already full (the worker never waits for input):
                     the median of the throughput runs.
    input_rate:      messages/s produced during the latency run (None when it was not run).
    p50_ms, p95_ms, p99_ms: end-to-end latency at `input_rate`, produce -> output record received.
    broker:          what served the topics (e.g. "tansu (embedded)" or a bootstrap address).
    worker_batch:    messages the worker gathered per scoring call at most.
    flagged:         messages flagged (and neutralized) in the throughput run.
    judge_share:     share of the throughput runs' wall time the worker spent in `Defender.judge`
                     (scoring, neutralizing, verdicts); the rest is Kafka, decoding and waiting.
    run_seconds:     wall seconds of each throughput run (`messages` texts each), from the start of
                     scoring of its first batch to the commit of its last.
    first_batch_wait_ms: per throughput run, from the full input topic to the start of scoring of the
                     first batch (the consumer's fetch wait: start-up latency, not throughput).
    """

    messages: int
    messages_per_s: float
    input_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    broker: str
    worker_batch: int = 0
    flagged: int = 0
    judge_share: float | None = None
    run_seconds: list[float] = field(default_factory=list)
    first_batch_wait_ms: list[float] = field(default_factory=list)


def pipeline_threshold(defender: Defender, count: int, percentile: float) -> float:
    """The pipeline's threshold: the `percentile`-th percentile of the anomaly scores of `count` short
    texts other than the measured ones (seed 1)."""
    from stream_guard.bench.texts import bench_texts

    calibration = bench_texts("short", count, seed=1).texts
    scores = run_on_torch_thread(defender.score, calibration)
    return float(np.percentile([s.anomaly for s in scores], percentile))


class PipelineRunner(Protocol):
    """Runs the scoring worker on `texts` through a broker and measures it.

    `settings.batch_size` is the model's batch; `worker_batch` the messages the worker gathers per
    scoring call (the Defender sorts them by length into model batches); `rate` the latency run's input;
    the threshold is the `flag_percentile`-th percentile of other texts' scores (the calibration
    default, 80: about 20% of texts above it, neutralized and re-classified), or `threshold` when the
    caller has already computed it with `pipeline_threshold`. The throughput is
    measured `repeats` times; `between` (when given) is called before each throughput run and after
    the last, while the worker idles, so that reference timings interleave with the runs."""

    def __call__(
        self,
        classifier: LoadedClassifier,
        settings: DefenderSettings,
        texts: Sequence[str],
        *,
        rate: float | None,
        worker_batch: int,
        flag_percentile: float,
        progress: bool,
        repeats: int = 1,
        between: Callable[[], None] | None = None,
        threshold: float | None = None,
    ) -> PipelineResult: ...


NO_RUNNER = (
    "no pipeline runner given: `stream-guard bench` passes the broker one "
    "(consumers.bench.pipeline_runner.run_pipeline) to run_bench"
)


def percentiles_ms(latencies_s: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds of latencies given in seconds (for runners)."""
    p50, p95, p99 = np.percentile(np.asarray(latencies_s, dtype=np.float64) * 1000.0, [50, 95, 99])
    return float(p50), float(p95), float(p99)
