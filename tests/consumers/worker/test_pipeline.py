"""The scoring worker in-process on the real broker: routing, exactly-once coverage, order, commits,
threshold hot reload. (Crash/restart and group tests: test_worker_process.py, test_worker_group.py.)"""

from __future__ import annotations

import statistics
import time
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from consumers.devtools.broker import free_port
from consumers.worker.loop import BatchReport, Worker
from consumers.worker.thread import WorkerThread
from schemas import (
    AuditRecord,
    CalibrationSummary,
    DeadLetterRecord,
    PredictionRecord,
    ThresholdUpdate,
    encode,
)
from tests.consumers.worker_support import (
    committed,
    end_offsets,
    identity,
    mixed_values,
    one_torch_thread,
    produce,
    read_outputs,
    text_for,
    tiny_defender,
    wait_for,
    worker_settings,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


@pytest.fixture
def worker_defender(tmp_path_factory):
    return tiny_defender(tmp_path_factory)


@pytest.fixture
def topics(topic_factory):
    return {
        "input": topic_factory(partitions=2, prefix="in"),
        "predictions": topic_factory(partitions=2, prefix="pred"),
        "audit": topic_factory(partitions=2, prefix="audit"),
        "dead_letter": topic_factory(partitions=1, prefix="dlq"),
        "thresholds": topic_factory(partitions=1, prefix="thr"),
    }


def _outputs_types(topics):
    return {
        topics["predictions"]: PredictionRecord,
        topics["audit"]: AuditRecord,
        topics["dead_letter"]: DeadLetterRecord,
    }


def _median_score(defender, n: int) -> float:
    """The median anomaly score of the test texts: about half of them flag at this threshold."""
    texts = [text_for(i) for i in range(n)]
    # scored in a thread, like the worker does (torch's main-thread pool is slow on a busy 2-core box)
    with ThreadPoolExecutor(1) as pool:
        scores = pool.submit(defender.score, texts).result()
    return statistics.median(s.anomaly for s in scores)


def _update(defender, value: float, version: str, created_at: datetime, model_id: str | None = None):
    return ThresholdUpdate(
        model_id=model_id or defender.model_id,
        version=version,
        value=value,
        percentile=95.0,
        # a summary that supports the value (the worker refuses values their summary cannot support)
        calibration=CalibrationSummary(dataset="test", n_texts=10, score_mean=value, score_std=1.0),
        created_at=created_at,
    )


def test_mixed_stream_every_message_once_in_order_and_committed(kafka_settings, topics, worker_defender):
    threshold = _median_score(worker_defender, 120)
    values = mixed_values(120)
    sent = produce(kafka_settings, topics["input"], values)
    port = free_port()
    settings = worker_settings(
        kafka_settings,
        worker_defender,
        [topics["input"]],
        topics,
        threshold=threshold,
        thresholds_topic=None,
        metrics_port=port,
        metrics_host="127.0.0.1",
    )
    reports: list[BatchReport] = []
    worker = Worker(settings, defender=worker_defender, on_batch=reports.append)
    with WorkerThread(worker) as run:
        outputs = read_outputs(kafka_settings, _outputs_types(topics), expected=len(sent))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        run.stop()

    # every input exactly once across the three topics, identified by its source coordinates
    by_source = defaultdict(list)
    for out in outputs:
        by_source[identity(out)].append(out)
    expected = {(s.partition, s.offset): s for s in sent}
    assert set(by_source) == set(expected)
    assert all(len(v) == 1 for v in by_source.values()), "duplicates"
    for coords, (out,) in by_source.items():
        s = expected[coords]
        assert out.key == s.key and out.record.source.key == s.key
        assert out.record.source.topic == topics["input"]
        if s.valid:
            assert isinstance(out.record, PredictionRecord)
            assert out.record.id == s.message_id
            assert out.record.threshold_version == f"static:{threshold:g}"
            assert out.record.flagged == (out.record.anomaly_score > out.record.threshold)
            assert out.topic == (topics["audit"] if out.record.flagged else topics["predictions"])
            assert out.record.metadata == {"n": int(s.message_id[1:])}
        else:
            assert out.topic == topics["dead_letter"] and isinstance(out.record, DeadLetterRecord)
            assert out.record.reason and out.record.error_type != "internal"
    kinds = {type(o.record) for o in outputs}
    assert kinds == {PredictionRecord, AuditRecord, DeadLetterRecord}
    audits = [o.record for o in outputs if isinstance(o.record, AuditRecord)]
    assert all(a.tokens and a.text for a in audits), "audit records carry the evidence"
    error_types = {o.record.error_type for o in outputs if isinstance(o.record, DeadLetterRecord)}
    assert {"not_json", "validation", "invalid_utf8", "empty_text", "oversize"} <= error_types

    # within a key, each output topic holds the key's records in input order
    offsets_by_topic_key = defaultdict(list)
    for out in outputs:
        offsets_by_topic_key[(out.topic, out.key)].append(identity(out))
    for seq in offsets_by_topic_key.values():
        assert len({p for p, _ in seq}) == 1 and seq == sorted(seq)

    # committed offsets are the end of the input; batches were real batches
    assert committed(kafka_settings, settings.group_id, topics["input"], 2) == end_offsets(sent, 2)
    assert sum(r.size for r in reports) == len(sent) and max(r.size for r in reports) > 1
    # a batch with scored messages says when its scoring began; batches follow that order
    starts = [r.scoring_started for r in reports if r.scored]
    assert starts and None not in starts and starts == sorted(starts)
    assert all(r.scoring_started is None for r in reports if not r.scored)
    n_dead = sum(not s.valid for s in sent)
    assert worker.stats.consumed == len(sent) and worker.stats.dead_letters == n_dead

    # Prometheus: counts match what was read back
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line and not line.startswith("#")
    }
    assert samples[f'stream_guard_consumed_total{{topic="{topics["input"]}"}}'] == len(sent)
    assert samples[f'stream_guard_produced_total{{topic="{topics["dead_letter"]}"}}'] == n_dead
    assert samples["stream_guard_flagged_total"] == len(audits)
    assert samples["stream_guard_batch_size_count"] == len(reports)
    assert samples["stream_guard_threshold_value"] == pytest.approx(threshold)
    assert f'stream_guard_threshold_info{{model_id="{worker_defender.model_id}",version="static:' in metrics
    assert samples["stream_guard_end_to_end_seconds_count"] == len(sent)
    assert "stream_guard_paused 0.0" in metrics


def test_threshold_update_applies_within_a_second(kafka_settings, topics, worker_defender):
    from confluent_kafka import Producer

    start = _median_score(worker_defender, 40)
    settings = worker_settings(kafka_settings, worker_defender, [topics["input"]], topics, threshold=start)
    worker = Worker(settings, defender=worker_defender)
    types = _outputs_types(topics)
    producer = Producer(kafka_settings.producer_config())
    now = datetime.now(UTC)
    with WorkerThread(worker) as run:
        assert worker.wait_assigned(20)
        first = produce(kafka_settings, topics["input"], mixed_values(24))
        before = read_outputs(kafka_settings, types, expected=len(first), settle=0.0)
        assert {o.record.threshold_version for o in before if not isinstance(o.record, DeadLetterRecord)} == {
            f"static:{start:g}"
        }
        # ignored: not a ThresholdUpdate, another model's, then the real one, then an older one
        producer.produce(topics["thresholds"], value=b'{"model_id": "x"}')
        foreign = _update(worker_defender, -1e6, "foreign", now, model_id="other@123")
        producer.produce(topics["thresholds"], value=encode(foreign))
        producer.produce(topics["thresholds"], value=encode(_update(worker_defender, -1e6, "v2", now)))
        older = _update(worker_defender, 1e6, "v1-old", now - timedelta(hours=1))
        producer.produce(topics["thresholds"], value=encode(older))
        assert producer.flush(10) == 0
        written = time.monotonic()
        took = wait_for(lambda: worker.defender.threshold.version == "v2", 1.0, "the v2 threshold")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - written)))
        second = produce(kafka_settings, topics["input"], mixed_values(24, start=24))
        after = read_outputs(kafka_settings, types, expected=len(first) + len(second))
        run.stop()
    assert took < 1.0
    assert worker.stats.threshold_updates == 1 and worker.defender.threshold.version == "v2"
    new_sources = {(s.partition, s.offset) for s in second}
    judged = [o for o in after if identity(o) in new_sources and not isinstance(o.record, DeadLetterRecord)]
    assert judged and all(o.record.threshold_version == "v2" for o in judged)
    assert all(isinstance(o.record, AuditRecord) for o in judged), "every text scores above -1e6"


def test_transactional_mode_commits_outputs_and_offsets_together(kafka_settings, topics, worker_defender):
    values = mixed_values(48)
    sent = produce(kafka_settings, topics["input"], values)
    settings = worker_settings(
        kafka_settings, worker_defender, [topics["input"]], topics, threshold=0.0, transactional=True
    )
    worker = Worker(settings, defender=worker_defender)
    with WorkerThread(worker) as run:
        # read_committed (librdkafka's default isolation level): only committed transactions are visible
        outputs = read_outputs(kafka_settings, _outputs_types(topics), expected=len(sent))
        run.stop()
    assert sorted(identity(o) for o in outputs) == sorted((s.partition, s.offset) for s in sent)
    assert committed(kafka_settings, settings.group_id, topics["input"], 2) == end_offsets(sent, 2)
    assert worker.stats.commits >= 1


def test_an_output_over_the_producer_limit_is_dead_lettered_and_the_worker_goes_on(
    kafka_settings, topics, worker_defender
):
    """Issue 15: a record over the producer's message.max.bytes is a failure of its message alone: the
    message is dead-lettered (``output_too_large``, its dead letter cut to fit) and the partition moves
    on. (It used to stop the worker: a crash loop on every restart.)"""
    sent = produce(kafka_settings, topics["input"], mixed_values(12))
    # audit records carry every token's attributions: far over a 1000-byte message limit
    settings = worker_settings(
        kafka_settings,
        worker_defender,
        [topics["input"]],
        topics,
        threshold=-1e9,
        producer_overrides={"message.max.bytes": 1000},
    )
    with WorkerThread(Worker(settings, defender=worker_defender)) as run:
        outputs = read_outputs(kafka_settings, _outputs_types(topics), expected=len(sent))
        run.stop()
    assert sorted(identity(o) for o in outputs) == sorted((s.partition, s.offset) for s in sent)
    assert all(isinstance(o.record, DeadLetterRecord) for o in outputs)
    too_large = [o.record for o in outputs if o.record.error_type == "output_too_large"]
    assert len(too_large) == sum(s.valid for s in sent)
    assert all(len(encode(r)) + 2 <= 1000 and r.original_size > 0 for r in too_large)
    assert committed(kafka_settings, settings.group_id, topics["input"], 2) == end_offsets(sent, 2)


def test_a_binding_token_budget_cuts_batches_and_loses_nothing(kafka_settings, topics, worker_defender):
    """With a padded-token budget that binds, the worker tokenizes messages as they arrive (the judge
    step reuses the tokens) and closes batches on the budget; every message still gets its output."""
    values = mixed_values(40)
    sent = produce(kafka_settings, topics["input"], values)
    settings = worker_settings(
        kafka_settings,
        worker_defender,
        [topics["input"]],
        topics,
        threshold=_median_score(worker_defender, 40),
        thresholds_topic=None,
        max_batch_tokens=100,  # 16 messages x 64 tokens could exceed it
        max_wait_ms=200,
    )
    reports: list[BatchReport] = []
    with WorkerThread(Worker(settings, defender=worker_defender, on_batch=reports.append)) as run:
        outputs = read_outputs(kafka_settings, _outputs_types(topics), expected=len(sent))
        run.stop()
    assert {identity(o) for o in outputs} == {(s.partition, s.offset) for s in sent}
    assert len(outputs) == len(sent)
    # closed by the budget, not the count; and on real token counts (at the max length each, 1 a batch)
    assert 1 < max(r.scored for r in reports) < 16
