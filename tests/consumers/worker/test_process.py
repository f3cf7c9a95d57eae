"""`stream-guard run` as a real process: SIGKILL mid-stream loses nothing, SIGTERM commits and exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import (
    AuditRecord,
    CalibrationSummary,
    DeadLetterRecord,
    PredictionRecord,
    ThresholdUpdate,
    encode,
)
from tests.consumers.worker_support import (
    FAST_GROUP,
    MAX_BYTES,
    OutputCollector,
    Trickle,
    committed,
    end_offsets,
    mixed_values,
    one_torch_thread,
    tiny_defender,
    wait_for,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


@pytest.fixture
def worker_defender(tmp_path_factory):
    return tiny_defender(tmp_path_factory)


def _start(
    kafka_settings, model_dir: Path, topics: dict[str, str], group: str, log: Path
) -> subprocess.Popen:
    env = {
        **os.environ,
        "STREAM_GUARD_DEVICE": "cpu",
        "STREAM_GUARD_TORCH_THREADS": "1",
        "STREAM_GUARD_MAX_LENGTH": "64",
        "STREAM_GUARD_MAX_BATCH_SIZE": "8",
        "STREAM_GUARD_MAX_WAIT_MS": "20",
        "STREAM_GUARD_MAX_MESSAGE_BYTES": str(MAX_BYTES),
        "STREAM_GUARD_CONSUMER_OVERRIDES": json.dumps(FAST_GROUP),
        "PYTHONPATH": str(REPO),
    }
    command = [
        sys.executable,
        "-m",
        "consumers.cli",
        "run",
        "--bootstrap-servers",
        kafka_settings.bootstrap_servers,
        "--model",
        str(model_dir),
        "--group-id",
        group,
        "--input-topic",
        topics["input"],
        "--predictions-topic",
        topics["predictions"],
        "--audit-topic",
        topics["audit"],
        "--dead-letter-topic",
        topics["dead_letter"],
        "--thresholds-topic",
        topics["thresholds"],
        "--threshold",
        "1e9",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_sigkill_then_restart_loses_nothing_and_sigterm_commits(
    kafka_settings, topic_factory, worker_defender, tmp_path
):
    from confluent_kafka import Producer

    topics = {
        "input": topic_factory(partitions=2, prefix="in"),
        "predictions": topic_factory(partitions=2, prefix="pred"),
        "audit": topic_factory(partitions=2, prefix="audit"),
        "dead_letter": topic_factory(partitions=1, prefix="dlq"),
        "thresholds": topic_factory(partitions=1, prefix="thr"),
    }
    group = f"proc-{topics['input']}"
    model_dir = Path(worker_defender.settings.model)
    # a threshold already on the topic wins over --threshold from the first batch on
    update = ThresholdUpdate(
        model_id=worker_defender.model_id,
        version="published-1",
        value=0.0,
        percentile=95.0,
        calibration=CalibrationSummary(dataset="t", n_texts=5, score_mean=0.0, score_std=1.0),
        created_at=datetime.now(UTC),
    )
    producer = Producer(kafka_settings.producer_config())
    producer.produce(topics["thresholds"], value=encode(update))
    assert producer.flush(10) == 0

    types = {
        topics["predictions"]: PredictionRecord,
        topics["audit"]: AuditRecord,
        topics["dead_letter"]: DeadLetterRecord,
    }
    log = tmp_path / "worker.log"
    values = mixed_values(400)
    with OutputCollector(kafka_settings, types) as outputs:
        first = _start(kafka_settings, model_dir, topics, group, log)
        trickle = Trickle(kafka_settings, topics["input"], values, per_tick=10, tick=0.05)
        try:
            joined = lambda: first.poll() is None and "partitions assigned" in log.read_text()  # noqa: E731
            wait_for(joined, 60, "the first worker to join its group")
            trickle.start()
            wait_for(lambda: len(outputs.outputs) >= 60, 30, "60 outputs")
            first.send_signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
            at_kill = committed(kafka_settings, group, topics["input"], 2)
            second = _start(kafka_settings, model_dir, topics, group, log)
            sent = trickle.join()
            assert len(trickle.sent) == len(values)
            wanted = {(s.partition, s.offset) for s in sent}
            wait_for(lambda: wanted <= outputs.sources(), 60, "every input in the outputs")
            second.send_signal(signal.SIGTERM)
            code = second.wait(30)
        finally:
            for proc in (first, locals().get("second")):
                if proc is not None and proc.poll() is None:
                    proc.kill()
        time.sleep(0.3)  # let the collector see any late duplicate
    tail = log.read_text()[-3000:]
    assert code == 0, tail
    assert committed(kafka_settings, group, topics["input"], 2) == end_offsets(sent, 2), tail

    counts = Counter((o.record.source.partition, o.record.source.offset) for o in outputs.outputs)
    assert set(counts) == wanted
    duplicates = {coords for coords, n in counts.items() if n > 1}
    print(f"SIGKILL: {len(duplicates)} inputs produced twice; committed at the kill: {at_kill}")
    # only what the killed worker had not committed can repeat
    assert all(offset >= max(at_kill.get(partition, 0), 0) for partition, offset in duplicates), (
        duplicates,
        at_kill,
    )
    judged = [o.record for o in outputs.outputs if not isinstance(o.record, DeadLetterRecord)]
    assert judged and {r.threshold_version for r in judged} == {"published-1"}
