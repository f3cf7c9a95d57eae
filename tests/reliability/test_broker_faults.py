"""The broker misbehaving under a running worker, each on a broker of its own (the suite's shared
broker is left alone): paused with SIGSTOP under load, and not there yet when the worker starts. In
both, every input comes out (lost 0) once the broker is back, and the worker stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumers.devtools.broker import EmbeddedBroker, free_port
from consumers.devtools.fuzz import fuzz_messages
from consumers.kafka.settings import KafkaSettings
from consumers.kafka.topics import ensure_topics
from tests.consumers.worker_support import tiny_bert_dir
from tests.reliability.harness import (
    Collector,
    Producer,
    Topics,
    account,
    start_worker,
    wait_joined,
    wait_until,
)

MESSAGES = 240


@pytest.fixture
def own_broker():
    with EmbeddedBroker(cluster_id=f"faults-{uuid.uuid4().hex[:6]}") as broker:
        yield broker


def _finish(proc: Any, log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()[-3000:]


def test_a_broker_paused_under_load_loses_nothing(
    own_broker: EmbeddedBroker, tmp_path: Path, tmp_path_factory: Any
) -> None:
    kafka = KafkaSettings(bootstrap_servers=own_broker.bootstrap_servers)
    topics = Topics.create(kafka, "pause", 2)
    log = tmp_path / "worker.log"
    corpus = list(fuzz_messages(MESSAGES, 11, nulls=False, heavy=False))
    producer = Producer(kafka, topics.input)
    proc = start_worker(kafka, tiny_bert_dir(tmp_path_factory), topics, f"pause-{uuid.uuid4().hex[:6]}", log)
    try:
        wait_joined(proc, log, 90)
        with Collector(kafka, topics) as collector:
            producer.send(corpus[: MESSAGES // 2])
            assert wait_until(lambda: len(collector.outputs) >= MESSAGES // 8, 60), log.read_text()[-3000:]
            assert own_broker.pid is not None
            os.kill(own_broker.pid, signal.SIGSTOP)  # the broker hangs: no answer, no error
            try:
                time.sleep(8)
                assert proc.poll() is None, "the worker died while the broker was paused"
            finally:
                os.kill(own_broker.pid, signal.SIGCONT)
            producer.send(corpus[MESSAGES // 2 :])
            wanted = set(producer.sent)
            assert wait_until(lambda: wanted <= collector.sources(), 120), log.read_text()[-3000:]
            _finish(proc, log)
            books = account(producer.sent, collector.outputs)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert books.lost == [] and books.inputs == MESSAGES, books.line()


def test_a_worker_started_before_its_broker_works_once_the_broker_is_up(
    tmp_path: Path, tmp_path_factory: Any
) -> None:
    port = free_port()
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")
    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"early-in-{tag}", f"early-pred-{tag}", f"early-audit-{tag}", f"early-dlq-{tag}")
    log = tmp_path / "worker.log"
    proc = start_worker(kafka, tiny_bert_dir(tmp_path_factory), topics, f"early-{tag}", log)
    try:
        time.sleep(10)  # no broker: the worker waits, it does not exit
        assert proc.poll() is None, log.read_text()[-3000:]
        with EmbeddedBroker(port=port, cluster_id=f"early-{tag}"):
            # the topics, created once the broker is up
            ensure_topics(kafka.admin_config(), dict.fromkeys(topics.names, 1))
            wait_joined(proc, log, 120)
            corpus = list(fuzz_messages(60, 13, nulls=False, heavy=False))
            producer = Producer(kafka, topics.input)
            with Collector(kafka, topics) as collector:
                producer.send(corpus)
                wanted = set(producer.sent)
                assert wait_until(lambda: wanted <= collector.sources(), 120), log.read_text()[-3000:]
                _finish(proc, log)
                books = account(producer.sent, collector.outputs)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert books.lost == [] and books.inputs == 60, books.line()
