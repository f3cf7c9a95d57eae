"""The broker part of `stream-guard bench`: consume → score → produce → commit, measured end to end.

:func:`run_pipeline` is the benchmark's pipeline runner (the core's ``stream_guard.bench`` knows nothing
of Kafka): ``stream-guard bench`` (``consumers.cli.bench``) passes it to ``run_bench(..., pipeline_runner=)``.

What runs: the scoring worker (:class:`consumers.worker.loop.Worker`, in a thread of this process) on an
embedded Tansu broker started for the run, or on ``$STREAM_GUARD_BENCH_BOOTSTRAP`` when set, with
fresh topics (1 partition each). The threshold is a percentile (by default the calibration job's, the
80th) of the anomaly scores of other texts of the same kind, so about 20% of messages are neutralized and
re-classified, as in production (with confirmation, only those whose label moved are flagged).

1. Throughput: the input topic is filled with every text at once (the worker never waits for input);
   messages/s = texts / (time from the start of scoring of the run's first batch to the commit of its
   last), the median of ``repeats`` such runs (the caller's ``between`` runs before each and after the
   last). The wait before the first batch is reported apart (``first_batch_wait_ms``, 4-56 ms
   measured): the idle consumer's fetch in progress when the topic fills (``fetch.wait.max.ms``,
   100 ms in the worker) is a start-up latency of the run, not a cost per message.
2. Latency: texts are produced at ``rate`` messages/s, each with its own key; the end-to-end latency of
   a message is from just before its produce to the arrival of its output record at a reader.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from tqdm import tqdm

from consumers.kafka.settings import KafkaSettings
from consumers.kafka.topics import ensure_topics
from consumers.worker.metrics import BatchReport
from consumers.worker.settings import WorkerSettings
from consumers.worker.thread import WorkerThread
from stream_guard.bench.pipeline import (
    PipelineResult,
    percentiles_ms,
    pipeline_threshold,
)
from stream_guard.calibration import DEFAULT_PERCENTILE
from stream_guard.settings import DefenderSettings
from stream_guard.threshold import Threshold

if TYPE_CHECKING:
    from stream_guard.loading import LoadedClassifier

__all__ = ["BOOTSTRAP_ENV", "run_pipeline"]

BOOTSTRAP_ENV = "STREAM_GUARD_BENCH_BOOTSTRAP"
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
LATENCY_SECONDS = 10.0  # length of the latency run at `rate`


@contextlib.contextmanager
def _broker() -> Iterator[tuple[KafkaSettings, str]]:
    bootstrap = os.environ.get(BOOTSTRAP_ENV)
    if bootstrap:
        yield KafkaSettings(bootstrap_servers=bootstrap), bootstrap
        return
    from consumers.devtools.broker import EmbeddedBroker

    with EmbeddedBroker(cluster_id="stream-guard-bench") as broker:
        plain = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            security_protocol=None,
            sasl_mechanism=None,
            sasl_username=None,
            sasl_password=None,
            ssl_ca_location=None,
            extra={},
        )
        yield plain, "tansu (embedded)"


class _Reader:
    """Reads the output topics in a thread and notes when each keyed record arrived."""

    def __init__(self, kafka: KafkaSettings, topics: Sequence[str]) -> None:
        self.kafka, self.topics = kafka, list(topics)
        self.arrived: dict[bytes, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-reader", daemon=True)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        group = f"bench-reader-{uuid.uuid4().hex[:8]}"
        consumer = Consumer(self.kafka.consumer_config(group, **{"fetch.wait.max.ms": 5}))  # no long polls
        consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in self.topics])
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.02):
                    if msg.error() is None and msg.key() is not None:
                        self.arrived.setdefault(msg.key(), time.time())
        finally:
            consumer.close()

    def __enter__(self) -> _Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class _Progress:
    """What the worker's batches tell the thread that drives the runs."""

    done: threading.Event = field(default_factory=threading.Event)
    handled: int = 0  # messages committed so far, all runs
    goal: int = 0  # `handled` at which the current run is complete
    first_scoring: float | None = None  # perf_counter() when the current run's first batch began scoring
    judging: float = 0.0  # seconds in Defender.judge, throughput runs only
    failure: list[BaseException] = field(default_factory=list)

    def expect(self, count: int) -> None:
        self.done.clear()
        self.goal = self.handled + count
        self.first_scoring = None

    def wait(self, timeout: float, what: str) -> None:
        self.done.wait(timeout)
        if self.failure:
            raise self.failure[0]
        if self.handled < self.goal:
            raise TimeoutError(f"pipeline bench: the worker did not finish {what}")


def _value(index: int, text: str) -> bytes:
    return orjson.dumps({"id": f"b{index}", "text": text})


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"pipeline bench: timed out waiting for {what}")
        time.sleep(0.005)


def run_pipeline(
    classifier: LoadedClassifier,
    settings: DefenderSettings,
    texts: Sequence[str],
    *,
    rate: float | None,
    worker_batch: int,
    flag_percentile: float = DEFAULT_PERCENTILE,
    progress: bool = False,
    repeats: int = 1,
    between: Callable[[], None] | None = None,
    threshold: float | None = None,
) -> PipelineResult:
    """Measure the worker on `texts`: throughput with a full input topic, then latency at `rate`.

    The worker gathers up to `worker_batch` messages per scoring call, bounded by count only; the
    Defender sorts them by length into batches of `settings.batch_size` within
    `settings.max_batch_tokens`, as the scoring-only reference does with the same chunks. (The
    worker's own token budget bounds a gathered call as if it were one padded tensor: with the model
    budget it would split a call at the first long text and leave a short, slow remainder.)
    """
    from confluent_kafka import Producer

    from consumers.worker.loop import Worker  # with torch: imported when a bench runs, not with the app
    from stream_guard.defender import Defender

    defender = Defender(classifier, settings)
    if threshold is None:
        threshold = pipeline_threshold(defender, min(256, len(texts)), flag_percentile)
    defender.set_threshold(Threshold.static(threshold))
    latency_count = min(len(texts), max(1, int((rate or 0) * LATENCY_SECONDS)))
    state = _Progress()
    throughput_messages = repeats * len(texts)

    def on_batch(report: BatchReport) -> None:
        if state.handled < throughput_messages:
            state.judging += report.scoring_seconds
        if state.first_scoring is None and report.scoring_started is not None:
            state.first_scoring = report.scoring_started
        state.handled += report.size
        bar.update(report.size)
        if state.handled >= state.goal:
            state.done.set()

    with (
        _broker() as (kafka, broker_name),
        tqdm(
            total=throughput_messages + latency_count, desc="pipeline", unit="msg", disable=not progress
        ) as bar,
    ):
        run = uuid.uuid4().hex[:8]
        names = {kind: f"bench-{run}-{kind}" for kind in ("in", "predictions", "audit", "dead-letter")}
        ensure_topics(kafka.admin_config(), dict.fromkeys(names.values(), 1))
        worker = Worker(
            WorkerSettings(
                group_id=f"bench-{run}",
                input_topics=[names["in"]],
                predictions_topic=names["predictions"],
                audit_topic=names["audit"],
                dead_letter_topic=names["dead-letter"],
                thresholds_topic=None,
                triggers_topic=None,
                threshold=threshold,
                max_batch_size=worker_batch,
                max_batch_tokens=None,
                consumer_overrides=FAST_GROUP,
                kafka=kafka,
                defender=settings,
            ),
            defender=defender,
            on_batch=on_batch,
        )

        def failed(error: BaseException) -> None:  # reported by the run in progress
            state.failure.append(error)
            state.done.set()

        thread = WorkerThread(worker, name="bench-worker", on_error=failed)
        producer = Producer(kafka.producer_config())
        thread.start()
        try:
            if not thread.wait_assigned(60):
                raise TimeoutError("pipeline bench: the worker did not join its group")
            runs, waits = [], []
            for run_index in range(repeats):
                if between is not None:
                    between()
                seconds, wait = _throughput_run(producer, names["in"], texts, run_index, state)
                runs.append(seconds)
                waits.append(wait)
            if between is not None:
                between()
            flagged = worker.stats.flagged // repeats
            p50 = p95 = p99 = None
            if rate:
                p50, p95, p99 = _latency_run(kafka, producer, names, texts[:latency_count], rate, state)
        finally:
            thread.stop(reraise=False)  # a failure is in state.failure, raised by the run it stopped
            producer.flush(10)
            del producer, worker  # close the clients while the broker still runs
            gc.collect()
    return PipelineResult(
        messages=len(texts),
        messages_per_s=len(texts) / float(np.median(runs)),
        input_rate=rate,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        broker=broker_name,
        worker_batch=worker_batch,
        flagged=flagged,
        judge_share=state.judging / sum(runs),
        run_seconds=runs,
        first_batch_wait_ms=[1000 * w for w in waits],
    )


def _throughput_run(
    producer: Any, topic: str, texts: Sequence[str], run_index: int, progress: _Progress
) -> tuple[float, float]:
    """Fill the input topic with `texts`; returns (seconds from the start of scoring of the first batch
    until the worker committed all, seconds from the full topic to that start)."""
    progress.expect(len(texts))
    for index, text in enumerate(texts):
        producer.produce(topic, value=_value(index, text), key=b"t%d-%d" % (run_index, index))
    producer.flush(30)
    filled = time.perf_counter()
    progress.wait(600, "a throughput run")
    ended = time.perf_counter()
    started = progress.first_scoring if progress.first_scoring is not None else filled
    return ended - started, max(0.0, started - filled)


def _latency_run(
    kafka: KafkaSettings,
    producer: Any,
    names: dict[str, str],
    texts: Sequence[str],
    rate: float,
    progress: _Progress,
) -> tuple[float, float, float]:
    """Produce `texts` at `rate`/s; returns p50/p95/p99 produce → output-arrival latency in ms."""
    outputs = [names["predictions"], names["audit"], names["dead-letter"]]
    sent: dict[bytes, float] = {}
    progress.expect(len(texts))
    with _Reader(kafka, outputs) as reader:
        start = time.perf_counter()
        for index, text in enumerate(texts):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            key = b"l%d" % index
            sent[key] = time.time()
            producer.produce(names["in"], value=_value(index, text), key=key)
            producer.poll(0)
        producer.flush(30)
        progress.wait(120 + len(texts) / rate, "the latency run")
        _wait(lambda: all(k in reader.arrived for k in sent), 60, "the latency run's outputs")
        latencies = [reader.arrived[key] - at for key, at in sent.items()]
    return percentiles_ms(latencies)
