"""The fault tests' harness, shared with the long versions in ``scripts/`` (sigkill_loop, fuzz_worker,
soak): output topics, `stream-guard run` as a real process, input produced with its coordinates, and
the accounting of every input against the outputs (lost, duplicated).

Everything runs on a real broker (the suite's, or an embedded Tansu the scripts start) and a tiny random
BERT with the packaged backbone's real tokenizer (``tests/stream_guard/tiny_models.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers.devtools.fuzz import FuzzMessage
from consumers.kafka.settings import KafkaSettings
from consumers.kafka.topics import ensure_topics
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord, decode

REPO = Path(__file__).resolve().parents[2]
FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 50}
BIG_PRODUCER = {"message.max.bytes": 4_000_000}
"""A producer that can send the >1 MB fuzz values (librdkafka's default refuses over 1,000,000)."""


@dataclass(frozen=True)
class Topics:
    input: str
    predictions: str
    audit: str
    dead_letter: str

    @classmethod
    def create(cls, kafka: KafkaSettings, prefix: str, partitions: int = 2) -> Topics:
        tag = uuid.uuid4().hex[:8]
        topics = cls(
            f"{prefix}-in-{tag}", f"{prefix}-pred-{tag}", f"{prefix}-audit-{tag}", f"{prefix}-dlq-{tag}"
        )
        ensure_topics(kafka.admin_config(), {name: partitions for name in topics.names})
        return topics

    @property
    def names(self) -> list[str]:
        return [self.input, self.predictions, self.audit, self.dead_letter]

    @property
    def output_types(self) -> dict[str, type]:
        return {
            self.predictions: PredictionRecord,
            self.audit: AuditRecord,
            self.dead_letter: DeadLetterRecord,
        }


def start_worker(
    kafka: KafkaSettings,
    model_dir: Path,
    topics: Topics,
    group: str,
    log: Path,
    *,
    max_batch_size: int = 8,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`stream-guard run` in a subprocess on the tiny model (threshold 0: verdicts of both kinds)."""
    environment = {
        **os.environ,
        "STREAM_GUARD_DEVICE": "cpu",
        "STREAM_GUARD_TORCH_THREADS": "1",
        "STREAM_GUARD_MAX_LENGTH": "64",
        "STREAM_GUARD_MAX_BATCH_SIZE": str(max_batch_size),
        "STREAM_GUARD_MAX_WAIT_MS": "20",
        "STREAM_GUARD_CONFIRM": "false",
        "STREAM_GUARD_CONSUMER_OVERRIDES": json.dumps(FAST_GROUP),
        "PYTHONPATH": str(REPO),
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "consumers.cli",
        "run",
        "--bootstrap-servers",
        kafka.bootstrap_servers,
        "--model",
        str(model_dir),
        "--group-id",
        group,
        "--input-topic",
        topics.input,
        "--predictions-topic",
        topics.predictions,
        "--audit-topic",
        topics.audit,
        "--dead-letter-topic",
        topics.dead_letter,
        "--thresholds-topic",
        "",
        "--triggers-topic",
        "",
        "--threshold",
        "0.5",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT)


def wait_joined(proc: subprocess.Popen[bytes], log: Path, timeout: float, since: int = 0) -> None:
    """Wait until the worker logged its first assignment after byte ``since`` of ``log``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if "partitions assigned" in log.read_text(errors="replace")[since:]:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the worker did not join its group within {timeout:g} s")


@dataclass
class Producer:
    """Produces messages and keeps each one's coordinates (partition, offset) and kind."""

    kafka: KafkaSettings
    topic: str
    sent: dict[tuple[int, int], str] = field(default_factory=dict)
    _producer: Any = None

    def __post_init__(self) -> None:
        from confluent_kafka import Producer as KafkaProducer

        self._producer = KafkaProducer(self.kafka.producer_config(**BIG_PRODUCER))

    def send(self, messages: Iterable[FuzzMessage]) -> int:
        count = 0
        for message in messages:

            def report(err: Any, msg: Any, kind: str = message.kind) -> None:
                if err is not None:
                    raise RuntimeError(f"input not produced: {err}")
                self.sent[(msg.partition(), msg.offset())] = kind

            while True:
                try:
                    self._producer.produce(
                        self.topic, value=message.value, key=message.key, on_delivery=report
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self._producer.poll(0)
            count += 1
        if self._producer.flush(60):
            raise RuntimeError("inputs not delivered within 60 s")
        return count


@dataclass(frozen=True)
class Accounting:
    """Every input against the outputs, by source coordinates."""

    inputs: int
    outputs: int
    lost: list[tuple[int, int]]
    duplicated: dict[tuple[int, int], int]
    dead_letters: int
    reasons: Counter[str]

    def line(self) -> str:
        return (
            f"messages {self.inputs}, outputs {self.outputs}, lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)}, dead-lettered {self.dead_letters}"
        )


def account(sent: Iterable[tuple[int, int]], outputs: Iterable[Any]) -> Accounting:
    """Lost (inputs without an output) and duplicated (inputs with more than one) among ``outputs``
    (``worker_support.Output`` s read from the output topics)."""
    outputs = list(outputs)
    counts = Counter((o.record.source.partition, o.record.source.offset) for o in outputs)
    wanted = set(sent)
    dead = [o.record for o in outputs if isinstance(o.record, DeadLetterRecord)]
    return Accounting(
        inputs=len(wanted),
        outputs=len(outputs),
        lost=sorted(wanted - set(counts)),
        duplicated={c: n for c, n in counts.items() if n > 1},
        dead_letters=len(dead),
        reasons=Counter(d.error_type for d in dead),
    )


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@dataclass(frozen=True)
class Out:
    """One output record as read back, its Kafka key kept as bytes (fuzzed keys are binary)."""

    topic: str
    key: bytes | None
    size: int
    record: Any


class Collector:
    """Reads the output topics from the beginning in a thread (``outputs`` grows as records arrive)."""

    def __init__(self, kafka: KafkaSettings, topics: Topics) -> None:
        self.kafka = kafka
        self.types = topics.output_types
        self.outputs: list[Out] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(self.kafka.consumer_config(f"collector-{uuid.uuid4().hex[:8]}"))
        metadata = consumer.list_topics(timeout=10).topics
        consumer.assign(
            [TopicPartition(t, p, OFFSET_BEGINNING) for t in self.types for p in metadata[t].partitions]
        )
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.05):
                    if msg.error():
                        continue
                    record = decode(self.types[msg.topic()], msg.value())
                    size = len(msg.value()) + len(msg.key() or b"")
                    self.outputs.append(Out(msg.topic(), msg.key(), size, record))
        finally:
            consumer.close()

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def sources(self) -> set[tuple[int, int]]:
        return {(o.record.source.partition, o.record.source.offset) for o in list(self.outputs)}


@contextlib.contextmanager
def broker_and_model(bootstrap: str | None, model: str | None) -> Iterator[tuple[KafkaSettings, Path]]:
    """For the scripts: Kafka settings (an embedded Tansu unless ``bootstrap``) and a model directory
    (the tiny random BERT unless ``model``). SIGTERM unwinds (the scripts' ``finally`` stops workers)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.ExitStack() as stack:
        if bootstrap is None:
            from consumers.devtools.broker import EmbeddedBroker

            bootstrap = stack.enter_context(EmbeddedBroker(cluster_id="fault-scripts")).bootstrap_servers
        if model is None:
            from tests.stream_guard.tiny_models import build_tiny_model

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fault-model-")))
            model_path = build_tiny_model("bert", folder)
        else:
            model_path = Path(model)
        yield KafkaSettings(bootstrap_servers=bootstrap), model_path


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def rss_mib(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (Linux /proc), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
