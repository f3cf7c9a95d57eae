"""ensure_topics: explicit, idempotent topic creation that waits for metadata."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consumers.devtools.broker import free_port
from consumers.kafka.settings import KafkaSettings
from consumers.kafka.topics import ensure_topics, validate_topic_name


@pytest.fixture
def fresh_name(kafka_settings: KafkaSettings) -> Iterator[Callable[[], str]]:
    """Unique topic names, deleted after the test (ensure_topics itself creates them)."""
    names: list[str] = []

    def make() -> str:
        names.append(f"ensure-{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield make
    if names:
        AdminClient(kafka_settings.admin_config()).delete_topics(names, operation_timeout=5)


def _partitions(settings: KafkaSettings) -> dict[str, int]:
    metadata = AdminClient(settings.admin_config()).list_topics(timeout=10)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def test_creates_topics_visible_in_metadata(
    kafka_settings: KafkaSettings, fresh_name: Callable[[], str]
) -> None:
    texts, audit = fresh_name(), fresh_name()
    created = ensure_topics(kafka_settings.admin_config(), {texts: 6, audit: 1})
    assert sorted(created) == sorted([texts, audit])
    partitions = _partitions(kafka_settings)  # a fresh client sees them at once
    assert partitions[texts] == 6
    assert partitions[audit] == 1


def test_is_idempotent(kafka_settings: KafkaSettings, fresh_name: Callable[[], str]) -> None:
    old, new = fresh_name(), fresh_name()
    assert ensure_topics(kafka_settings.admin_config(), {old: 3}) == [old]
    assert ensure_topics(kafka_settings.admin_config(), {old: 3}) == []
    # existing topics are left alone (even when asked for another count); only the missing one is made
    assert ensure_topics(kafka_settings.admin_config(), {old: 5, new: 2}) == [new]
    partitions = _partitions(kafka_settings)
    assert partitions[old] == 3
    assert partitions[new] == 2


def test_concurrent_calls_both_succeed(kafka_settings: KafkaSettings, fresh_name: Callable[[], str]) -> None:
    name = fresh_name()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: ensure_topics(kafka_settings.admin_config(), {name: 2}), range(2)))
    assert sum(len(r) for r in results) >= 1  # at least one created it; neither failed
    assert _partitions(kafka_settings)[name] == 2


@pytest.mark.parametrize("bad", ["", ".", "..", "has space", "a" * 250, "ünïcode"])
def test_invalid_topic_names_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid Kafka topic name"):
        validate_topic_name(bad)


def test_bad_arguments_fail_before_any_network_call() -> None:
    unreachable = {"bootstrap.servers": "127.0.0.1:9"}
    with pytest.raises(ValueError, match="partitions"):
        ensure_topics(unreachable, {"texts": 0})
    with pytest.raises(ValueError, match="replication"):
        ensure_topics(unreachable, {"texts": 1}, replication=0)
    with pytest.raises(ValueError, match="topic name"):
        ensure_topics(unreachable, {"bad name": 1})
    assert ensure_topics(unreachable, {}) == []


def test_unreachable_broker_fails_within_the_timeout() -> None:
    config = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": 0}
    started = time.monotonic()
    with pytest.raises((KafkaException, TimeoutError)):
        ensure_topics(config, {"texts": 1}, timeout=1.0)
    assert time.monotonic() - started < 5
