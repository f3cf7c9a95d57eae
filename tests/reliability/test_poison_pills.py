"""Poison pills on the real broker: a *valid* input whose output cannot be written, or whose dead letter
would be too large, goes to the dead-letter topic with what could be kept of it and why, and the
partition moves on (issue 15). Each case is followed by an ordinary message on the same partition: it
must be scored, the worker must still run, and the group's offset must reach the end of the input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from consumers.worker.loop import Worker
from consumers.worker.thread import WorkerThread
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord
from tests.consumers.worker_support import (
    committed,
    one_torch_thread,
    read_outputs,
    tiny_defender,
    worker_settings,
)

PRODUCER_LIMIT = 1_000_000  # librdkafka's default message.max.bytes, the worker's producer included


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture
def topics(topic_factory: Any) -> dict[str, str]:
    return {
        "input": topic_factory(partitions=1, prefix="in"),
        "predictions": topic_factory(partitions=1, prefix="pred"),
        "audit": topic_factory(partitions=1, prefix="audit"),
        "dead_letter": topic_factory(partitions=1, prefix="dlq"),
    }


def _run_worker(
    kafka_settings: Any, topics: dict[str, str], defender: Any, messages: list[tuple[bytes, bytes]]
) -> tuple[list[Any], Worker, BaseException | None]:
    """Produce ``messages`` (key, value) to the one input partition, run the worker until every one has
    an output (or 40 s), stop it; returns the outputs, the worker and what stopped it abnormally."""
    from confluent_kafka import Producer

    producer = Producer(kafka_settings.producer_config(**{"message.max.bytes": 4_000_000}))
    for key, value in messages:
        producer.produce(topics["input"], value=value, key=key)
    assert producer.flush(20) == 0
    settings = worker_settings(
        kafka_settings,
        defender,
        [topics["input"]],
        topics,
        threshold=1e9,  # nothing flags: clean records go to the predictions topic
        thresholds_topic=None,
        triggers_topic=None,
        max_message_bytes=1_000_000,  # the worker's default input limit
    )
    worker = Worker(settings, defender=defender)
    types = {
        topics["predictions"]: PredictionRecord,
        topics["audit"]: AuditRecord,
        topics["dead_letter"]: DeadLetterRecord,
    }
    run = WorkerThread(worker).start()
    try:
        outputs = read_outputs(kafka_settings, types, expected=len(messages), timeout=40)
    finally:
        run.stop(reraise=False)
    return outputs, worker, run.error


def _check_moved_on(kafka_settings: Any, topics: dict[str, str], worker: Worker, outputs: list[Any], n: int):
    by_offset = {o.record.source.offset: o for o in outputs}
    assert sorted(by_offset) == list(range(n)), "every message has exactly one output"
    assert len(outputs) == n, "no duplicates"
    last = by_offset[n - 1]
    assert isinstance(last.record, PredictionRecord) and last.record.id == "after"
    assert committed(kafka_settings, worker.settings.group_id, topics["input"], 1) == {0: n}
    return by_offset


def _after() -> tuple[bytes, bytes]:
    return b"k-after", orjson.dumps({"id": "after", "text": "a fine film with warm performances"})


def _fits(output: Any) -> None:
    raw = orjson.dumps(output.record.model_dump(mode="json"))
    assert len(raw) + len((output.key or "").encode()) < PRODUCER_LIMIT


def test_metadata_too_deep_to_encode_is_dead_lettered(kafka_settings, topics, tmp_path_factory) -> None:
    # orjson reads 1,024 levels but writes only 254: built as text, it parses and validates
    metadata = b'{"d":' * 300 + b'"bottom"' + b"}" * 300
    value = b'{"id": "deep", "text": "a fine film", "metadata": ' + metadata + b"}"
    assert orjson.loads(value)["id"] == "deep"
    outputs, worker, error = _run_worker(
        kafka_settings, topics, tiny_defender(tmp_path_factory), [(b"k-deep", value), _after()]
    )
    assert error is None, f"the worker stopped: {error!r}"
    by_offset = _check_moved_on(kafka_settings, topics, worker, outputs, 2)
    dead = by_offset[0].record
    assert isinstance(dead, DeadLetterRecord), dead
    assert dead.error_type == "unencodable" and dead.id == "deep"
    assert "encode" in dead.reason and "prediction" in dead.reason
    assert dead.original_value() == value and not dead.original_truncated
    assert dead.original_key() == b"k-deep" and by_offset[0].key == "k-deep"


def test_valid_message_whose_prediction_is_too_large_is_dead_lettered(
    kafka_settings, topics, tmp_path_factory
) -> None:
    # valid input just under the worker's 1,000,000-byte limit: its prediction copies the metadata
    # and adds ~600 bytes, over the producer's message.max.bytes
    stem = len(orjson.dumps({"id": "big", "text": "a fine film", "metadata": {"blob": ""}}))
    value = orjson.dumps({"id": "big", "text": "a fine film", "metadata": {"blob": "x" * (999_990 - stem)}})
    assert len(value) == 999_990
    outputs, worker, error = _run_worker(
        kafka_settings, topics, tiny_defender(tmp_path_factory), [(b"k-big", value), _after()]
    )
    assert error is None, f"the worker stopped: {error!r}"
    by_offset = _check_moved_on(kafka_settings, topics, worker, outputs, 2)
    out = by_offset[0]
    dead = out.record
    assert isinstance(dead, DeadLetterRecord), dead
    assert dead.error_type == "output_too_large" and dead.id == "big"
    assert "prediction" in dead.reason and "message.max.bytes" in dead.reason
    assert dead.original_size == len(value) and dead.original_truncated
    kept = dead.original_value()
    assert kept and value.startswith(kept) and len(kept) < len(value)
    _fits(out)


def test_huge_key_with_a_bad_value_gives_a_dead_letter_that_fits(
    kafka_settings, topics, tmp_path_factory
) -> None:
    key = b"K" * 450_000
    outputs, worker, error = _run_worker(
        kafka_settings, topics, tiny_defender(tmp_path_factory), [(key, b"not json at all"), _after()]
    )
    assert error is None, f"the worker stopped: {error!r}"
    by_offset = _check_moved_on(kafka_settings, topics, worker, outputs, 2)
    out = by_offset[0]
    dead = out.record
    assert isinstance(dead, DeadLetterRecord), dead
    assert dead.error_type == "not_json" and dead.original_value() == b"not json at all"
    assert dead.original_key_size == len(key) and dead.original_key_truncated
    kept_key = dead.original_key()
    assert kept_key and key.startswith(kept_key) and len(kept_key) <= 1024
    assert out.key is not None and len(out.key) <= 1024 and dead.source.key is not None
    assert len(dead.source.key) <= 1024
    _fits(out)
