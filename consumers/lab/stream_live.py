"""``lab stream --worker``: the same traffic through the live worker over a broker, to compare with replay.

An embedded broker (Tansu) is started; ``stream-guard calibrate --publish`` puts the threshold on the
thresholds topic (the same clean texts as the replay's calibration: the same threshold); the whole
traffic is produced to a one-partition input topic first (a backlog: the hardest case for a learner
that is not in the worker), then ``stream-guard run --learn-triggers --clean-texts …`` is started as a
process of its own, exactly as an operator would, and its records are read from the output topics until
every message has one. The worker is stopped with SIGTERM. Its records, in traffic order, are scored
like the replay's (:func:`consumers.lab.stream_eval.score_records`), and compared with them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

__all__ = ["worker_records"]

_READ_TIMEOUT_S = 900.0


def _topics(run: str) -> dict[str, str]:
    names = ("texts", "predictions", "audit", "dead-letter", "thresholds", "triggers")
    return {name: f"lab-{name}-{run}" for name in names}


def _produce(kafka: Any, topic: str, messages: Sequence[dict[str, str]]) -> None:
    from confluent_kafka import Producer

    producer = Producer(kafka.producer_config())
    for message in messages:
        producer.produce(topic, orjson.dumps(message), key=message["id"].encode())
    if producer.flush(60) != 0:
        raise RuntimeError("the traffic was not acknowledged by the broker")


def _read(kafka: Any, topics: Sequence[str], expected: int, worker: subprocess.Popen[bytes]) -> list[dict]:
    """Every record of ``topics`` until ``expected`` arrived; raises if the worker exits first."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(kafka.consumer_config(f"lab-reader-{uuid.uuid4().hex[:8]}"))
    try:
        consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in topics])
        records: list[dict] = []
        deadline = time.monotonic() + _READ_TIMEOUT_S
        while len(records) < expected:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode} before every record came")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(records)} of {expected} records in {_READ_TIMEOUT_S:g} s")
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    records.append(orjson.loads(msg.value()))
        return records
    finally:
        consumer.close()


def worker_records(
    model_dir: Path,
    messages: Sequence[dict[str, str]],
    validation: Path,
    work: Path,
    *,
    percentile: float | None,
    probe_rate: float,
    device: str = "cpu",
) -> tuple[list[dict], float]:
    """The worker's records of ``messages`` (in their order) and its wall time from start to the last
    record (model loading included)."""
    from consumers.devtools.broker import EmbeddedBroker
    from consumers.kafka.settings import KafkaSettings
    from consumers.kafka.topics import ensure_topics

    run = uuid.uuid4().hex[:8]
    topics = _topics(run)
    with EmbeddedBroker() as broker:
        address = broker.bootstrap_servers
        kafka = KafkaSettings(bootstrap_servers=address)
        ensure_topics(kafka.admin_config(), dict.fromkeys(topics.values(), 1))
        chosen = ["--percentile", str(percentile)] if percentile is not None else []
        calibrate = [
            *("calibrate", "--model", str(model_dir), "--device", device, "--dataset", str(validation)),
            *("--publish", "--bootstrap-servers", address, "--thresholds-topic", topics["thresholds"]),
            *chosen,
        ]
        done = subprocess.run(
            [sys.executable, "-m", "consumers.cli", *calibrate], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"calibrate --publish exited {done.returncode}: {done.stderr.strip()[-300:]}")
        _produce(kafka, topics["texts"], messages)
        command = [
            *(sys.executable, "-m", "consumers.cli", "run", "--bootstrap-servers", address),
            *("--model", str(model_dir), "--device", device, "--group-id", f"lab-{run}"),
            *("--input-topic", topics["texts"], "--predictions-topic", topics["predictions"]),
            *("--audit-topic", topics["audit"], "--dead-letter-topic", topics["dead-letter"]),
            *("--thresholds-topic", topics["thresholds"], "--triggers-topic", topics["triggers"]),
            *("--learn-triggers", "--clean-texts", str(validation), "--log-level", "WARNING"),
        ]
        env = {**os.environ, "STREAM_GUARD_PROBE_RATE": str(probe_rate), "STREAM_GUARD_METRICS_PORT": "0"}
        log = (work / "worker.log").open("wb")
        started = time.monotonic()
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            outputs = [topics["predictions"], topics["audit"], topics["dead-letter"]]
            records = _read(kafka, outputs, len(messages), worker)
            seconds = time.monotonic() - started
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
            log.close()
    position = {m["id"]: k for k, m in enumerate(messages)}
    records.sort(key=lambda r: position.get(r.get("id", ""), len(position)))
    return records, seconds
