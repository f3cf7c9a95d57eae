"""`stream-guard run` SIGKILLed a few times under load, restarted each time: no input is lost, and only
what a killed worker had not committed is produced again — the README's at-least-once promise ("after
a SIGKILL, at most the uncommitted batch is produced again"). ``scripts/sigkill_loop.py`` runs the long
version and prints SIGKILLs, messages, lost and duplicated."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path
from typing import Any

from consumers.devtools.fuzz import fuzz_messages
from tests.consumers.worker_support import committed, tiny_bert_dir
from tests.reliability.harness import (
    Collector,
    Producer,
    Topics,
    account,
    start_worker,
    wait_joined,
    wait_until,
)

KILLS = 2
MESSAGES = 600
BATCH = 8
PARTITIONS = 2


def test_sigkill_loop_loses_nothing_and_repeats_only_uncommitted(
    kafka_settings: Any, kafka_is_tansu: bool, tmp_path: Path, tmp_path_factory: Any
) -> None:
    model_dir = tiny_bert_dir(tmp_path_factory)
    topics = Topics.create(kafka_settings, "kill", PARTITIONS)
    group = f"kill-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    corpus = list(fuzz_messages(MESSAGES, 7, nulls=not kafka_is_tansu, heavy=False))
    producer = Producer(kafka_settings, topics.input)
    at_kill: list[dict[int, int]] = []
    proc = None
    with Collector(kafka_settings, topics) as collector:
        try:
            proc = start_worker(kafka_settings, model_dir, topics, group, log, max_batch_size=BATCH)
            wait_joined(proc, log, 90)
            chunk = MESSAGES // (KILLS + 1)
            for kill in range(KILLS + 1):
                producer.send(corpus[kill * chunk : (kill + 1) * chunk if kill < KILLS else MESSAGES])
                if kill == KILLS:
                    break
                # kill while the worker is in the middle of the new chunk
                target = len(collector.outputs) + chunk // 3
                assert wait_until(lambda t=target: len(collector.outputs) >= t, 60), log.read_text()[-3000:]
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(10) == -signal.SIGKILL
                at_kill.append(committed(kafka_settings, group, topics.input, PARTITIONS))
                since = log.stat().st_size
                proc = start_worker(kafka_settings, model_dir, topics, group, log, max_batch_size=BATCH)
                wait_joined(proc, log, 90, since)
            wanted = set(producer.sent)
            assert wait_until(lambda: wanted <= collector.sources(), 90), log.read_text()[-3000:]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-3000:]
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
        time.sleep(0.5)  # a late duplicate would show now
    books = account(producer.sent, collector.outputs)
    print(f"sigkill: {KILLS} SIGKILLs, {books.line()}; committed at each kill: {at_kill}")
    assert books.lost == [], books.line()
    assert books.inputs == MESSAGES
    # at-least-once: only inputs at or after the offset committed when a worker was killed repeat, each
    # at most once per kill, and no more than one uncommitted batch per kill
    for (partition, offset), count in books.duplicated.items():
        assert count <= KILLS + 1
        assert any(offset >= max(done.get(partition, 0), 0) for done in at_kill), (partition, offset, at_kill)
    assert len(books.duplicated) <= KILLS * BATCH, books.duplicated
