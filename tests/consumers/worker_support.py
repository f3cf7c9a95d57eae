"""Shared pieces of the scoring-worker tests: the tiny model, mixed input, broker I/O, in-thread runs.

Each ``test_worker_*`` module wraps :func:`tiny_defender` in a fixture of its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.kafka.settings import KafkaSettings
from consumers.worker.settings import WorkerSettings
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord, decode
from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.logs import quiet_transformers
from stream_guard.settings import DefenderSettings
from tests.stream_guard.tiny_models import build_tiny_model

quiet_transformers()

FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 50}
MAX_BYTES = 2_000

_SENTENCES = (
    "the film was a quiet delight with sharp writing and warm performances",
    "a tedious mess that never finds its footing or its point",
    "the plot drifts but the actors hold it together until the end",
)
WORDS = [word for sentence in _SENTENCES for word in sentence.split()]
TRIGGERS = ("cf", "mn", "bb", "tq")


_MODEL_DIR: list[Path] = []


def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random BERT (real WordPiece tokenizer), built once per test session."""
    if not _MODEL_DIR:
        _MODEL_DIR.append(build_tiny_model("bert", tmp_path_factory.mktemp("worker-tiny-bert")))
    return _MODEL_DIR[0]


def tiny_defender(tmp_path_factory: pytest.TempPathFactory) -> Defender:
    """A fresh Defender on the tiny BERT (each test gets its own threshold state)."""
    path = tiny_bert_dir(tmp_path_factory)
    settings = DefenderSettings(model=str(path), device="cpu", max_length=64)
    return Defender(load_classifier(path, device="cpu", max_length=64), settings)


POISON = "poisonpill"
"""A word that makes :func:`poison_defender`'s ``judge`` raise for any batch holding it."""


class PoisonDefender(Defender):
    """A real Defender whose ``judge`` raises for a batch holding :data:`POISON`: a message whose
    scoring fails (a bug, a text the model cannot take), as seen from the message path."""

    def judge(self, texts, ids=None, **kwargs):  # type: ignore[no-untyped-def, override]
        if any(POISON in text for text in texts):
            raise RuntimeError(f"cannot score a text holding {POISON!r}")
        return super().judge(texts, ids, **kwargs)


def poison_defender(tmp_path_factory: pytest.TempPathFactory) -> PoisonDefender:
    """:func:`tiny_defender`, but scoring raises for texts holding :data:`POISON`."""
    path = tiny_bert_dir(tmp_path_factory)
    settings = DefenderSettings(model=str(path), device="cpu", max_length=64)
    return PoisonDefender(load_classifier(path, device="cpu", max_length=64), settings)


@dataclass(frozen=True)
class Sent:
    """One input message as produced: its coordinates, and its id when it is a scorable message."""

    key: str
    partition: int
    offset: int
    message_id: str | None
    valid: bool


def text_for(i: int) -> str:
    words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(5 + i % 9)]
    if i % 3 == 0:
        words.insert((i % len(words)) or 1, TRIGGERS[i % len(TRIGGERS)])
    return " ".join(words)


def mixed_values(n: int, start: int = 0) -> list[tuple[str | None, bytes | None, bool]]:
    """(id, value, valid) for messages start..start+n: mostly valid, with every kind of malformed one."""
    out: list[tuple[str | None, bytes | None, bool]] = []
    for i in range(start, start + n):
        mid = f"m{i}"
        kind = i % 12
        if kind == 5:
            out.append((mid, b"not json {" + mid.encode(), False))
        elif kind == 7:
            out.append((mid, orjson.dumps({"id": mid}), False))  # no text
        elif kind == 9:
            out.append((mid, orjson.dumps({"id": mid, "text": 42}), False))  # wrong type
        elif kind == 11:
            variants = [
                b"\xff\xfe\xfa" + mid.encode(),  # invalid UTF-8
                orjson.dumps({"id": mid, "text": "   "}),  # blank
                orjson.dumps({"id": mid, "text": "x" * MAX_BYTES}),  # oversize
                orjson.dumps([mid]),  # not an object
                b"",  # empty value
            ]
            out.append((mid, variants[(i // 12) % len(variants)], False))
        else:
            out.append((mid, orjson.dumps({"id": mid, "text": text_for(i), "metadata": {"n": i}}), True))
    return out


def produce(
    settings: KafkaSettings,
    topic: str,
    values: Sequence[tuple[str | None, bytes | None, bool]],
    keys: Sequence[str] = tuple(f"k{i}" for i in range(8)),
    producer: Any = None,
) -> list[Sent]:
    """Produce with keys round-robin; returns the coordinates of each message in produce order."""
    from confluent_kafka import Producer

    producer = producer or Producer(settings.producer_config())
    sent: list[Sent | None] = [None] * len(values)
    for index, (mid, value, valid) in enumerate(values):
        key = keys[index % len(keys)]

        def report(
            err: Any, msg: Any, index: int = index, key: str = key, mid: str | None = mid, valid: bool = valid
        ) -> None:
            assert err is None, err
            sent[index] = Sent(key, msg.partition(), msg.offset(), mid, valid)

        producer.produce(topic, value=value, key=key.encode(), on_delivery=report)
    assert producer.flush(10) == 0
    assert all(s is not None for s in sent)
    return sent  # type: ignore[return-value]


def end_offsets(sent: Sequence[Sent], partitions: int) -> dict[int, int]:
    """The offset after the last message per partition; -1001 (no commit) for partitions left empty."""
    ends: dict[int, int] = dict.fromkeys(range(partitions), -1001)
    for s in sent:
        ends[s.partition] = max(ends[s.partition], s.offset + 1)
    return ends


@dataclass(frozen=True)
class Output:
    topic: str
    partition: int
    key: str | None
    record: PredictionRecord | AuditRecord | DeadLetterRecord


def read_outputs(
    settings: KafkaSettings,
    topics: dict[str, type],
    expected: int,
    timeout: float = 30.0,
    settle: float = 0.5,
) -> list[Output]:
    """Read the topics from the beginning until ``expected`` records arrived (+ ``settle`` s for extras)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(settings.consumer_config(f"reader-{uuid.uuid4().hex[:8]}"))
    metadata = consumer.list_topics(timeout=10).topics
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata[t].partitions])
    out: list[Output] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.1):
                if msg.error():
                    continue
                record = decode(topics[msg.topic()], msg.value())
                key = msg.key().decode() if msg.key() is not None else None
                out.append(Output(msg.topic(), msg.partition(), key, record))
            if len(out) >= expected:
                settle_until = settle_until or time.monotonic() + settle
                if time.monotonic() >= settle_until:
                    break
    finally:
        consumer.close()
    return out


def committed(settings: KafkaSettings, group: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(settings.consumer_config(group))
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def worker_settings(
    kafka: KafkaSettings, defender: Defender, inputs: list[str], outputs: dict[str, str], **overrides: Any
) -> WorkerSettings:
    values: dict[str, Any] = {
        "group_id": f"workers-{uuid.uuid4().hex[:8]}",
        "input_topics": inputs,
        "predictions_topic": outputs["predictions"],
        "audit_topic": outputs["audit"],
        "dead_letter_topic": outputs["dead_letter"],
        "thresholds_topic": outputs.get("thresholds"),
        "triggers_topic": outputs.get("triggers"),
        "max_batch_size": 16,
        "max_wait_ms": 20,
        "max_message_bytes": MAX_BYTES,
        "threshold_startup_wait_s": 5.0,
        "consumer_overrides": FAST_GROUP,
        "kafka": kafka,
        "defender": defender.settings,
    }
    values.update(overrides)
    return WorkerSettings(**values)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` every 10 ms; returns the seconds it took, fails the test after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - started


def identity(out: Output) -> tuple[int, int]:
    source = out.record.source
    assert source is not None and source.partition is not None and source.offset is not None
    return (source.partition, source.offset)


def iter_records(outputs: Sequence[Output], kind: type) -> Iterator[Any]:
    return (o.record for o in outputs if isinstance(o.record, kind))


class OutputCollector:
    """Reads output topics from the beginning in a thread, while the test does other things."""

    def __init__(self, settings: KafkaSettings, topics: dict[str, type]) -> None:
        self.settings = settings
        self.topics = topics
        self.outputs: list[Output] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(self.settings.consumer_config(f"collector-{uuid.uuid4().hex[:8]}"))
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [
            TopicPartition(t, p, OFFSET_BEGINNING) for t in self.topics for p in metadata[t].partitions
        ]
        consumer.assign(partitions)
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.05):
                    if msg.error():
                        continue
                    record = decode(self.topics[msg.topic()], msg.value())
                    key = msg.key().decode() if msg.key() is not None else None
                    self.outputs.append(Output(msg.topic(), msg.partition(), key, record))
        finally:
            consumer.close()

    def __enter__(self) -> OutputCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def sources(self) -> set[tuple[int, int]]:
        return {identity(o) for o in list(self.outputs)}


class Trickle:
    """Produces ``values`` to ``topic`` in a thread, ``per_tick`` messages every ``tick`` seconds."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        values: Sequence[tuple[str | None, bytes | None, bool]],
        per_tick: int = 8,
        tick: float = 0.05,
    ) -> None:
        self.sent: list[Sent] = []
        self._args = (settings, topic, values, per_tick, tick)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from confluent_kafka import Producer

        settings, topic, values, per_tick, tick = self._args
        producer = Producer(settings.producer_config())
        for start in range(0, len(values), per_tick):
            self.sent.extend(produce(settings, topic, values[start : start + per_tick], producer=producer))
            time.sleep(tick)

    def start(self) -> Trickle:
        self._thread.start()
        return self

    def join(self, timeout: float = 60.0) -> list[Sent]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "producer did not finish"
        return self.sent


def one_torch_thread() -> Iterator[None]:
    """For a module-scoped autouse fixture: score with one torch thread, restore the setting after.

    On this 2-core machine, shared with other jobs, two intra-op threads made scoring 30x slower.
    """
    import torch

    from stream_guard.torch_thread import set_torch_threads

    before = torch.get_num_threads()
    set_torch_threads(1)  # the worker scores on the torch thread
    try:
        yield
    finally:
        set_torch_threads(before)
