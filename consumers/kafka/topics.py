"""Explicit topic creation.

Topics are created up front with their partition counts rather than left to broker auto-creation
(Tansu auto-creates 4 partitions; Apache Kafka uses ``num.partitions``). ``ensure_topics`` is idempotent:
topics that already exist are left as they are (a partition count that differs from the requested one
is logged, not changed), and it returns only once every topic is visible in the cluster metadata, so
producers and consumers started right after it find their partitions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

__all__ = ["ensure_topics", "validate_topic_name"]

log = structlog.get_logger(__name__)

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def validate_topic_name(name: str) -> str:
    """Return ``name`` if Kafka accepts it as a topic name, else raise ``ValueError``."""
    if not _TOPIC_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"invalid Kafka topic name {name!r}: use 1-249 characters of [A-Za-z0-9._-]")
    return name


def ensure_topics(
    admin_config: Mapping[str, Any],
    topics: Mapping[str, int],
    replication: int = 1,
    timeout: float = 10.0,
    *,
    topic_config: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the missing topics in ``topics`` ({name: partitions}) and wait until all are in metadata.

    Args:
        admin_config: librdkafka config for an ``AdminClient`` (``KafkaSettings.admin_config()``).
        topics: topic name → number of partitions for topics that must be created.
        replication: replication factor of created topics.
        timeout: overall seconds for creation plus metadata propagation.
        topic_config: topic-level configs for created topics (e.g. ``{"cleanup.policy": "compact"}``).

    Returns:
        The names this call created (empty when all existed already).

    Raises:
        ValueError: an invalid name, partition count or replication factor.
        KafkaException: the broker refused to create a topic (other than "already exists").
        TimeoutError: the topics did not all appear in metadata within ``timeout``.
    """
    for name, partitions in topics.items():
        validate_topic_name(name)
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
    if replication < 1:
        raise ValueError(f"replication must be >= 1, got {replication}")
    if not topics:
        return []

    deadline = time.monotonic() + timeout
    admin = AdminClient(dict(admin_config))
    # list all topics: asking for a single topic's metadata may auto-create it on some brokers
    existing = admin.list_topics(timeout=_left(deadline)).topics
    missing = [name for name in topics if name not in existing]
    created: list[str] = []
    if missing:
        config = dict(topic_config or {})
        new_topics = [
            NewTopic(name, num_partitions=topics[name], replication_factor=replication, config=config)
            for name in missing
        ]
        futures = admin.create_topics(
            new_topics, operation_timeout=_left(deadline), request_timeout=_left(deadline)
        )
        for name, future in futures.items():
            try:
                future.result(timeout=_left(deadline))
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # lost a race: fine
                    raise
            else:
                created.append(name)
                log.info("topic created", topic=name, partitions=topics[name], replication=replication)

    _wait_visible(admin, topics, set(created), deadline)
    return created


def _wait_visible(admin: AdminClient, topics: Mapping[str, int], created: set[str], deadline: float) -> None:
    """Poll metadata until every topic is there (a created one with all its partitions)."""
    pending = dict(topics)
    while True:
        metadata = admin.list_topics(timeout=_left(deadline)).topics
        for name in list(pending):
            meta = metadata.get(name)
            if meta is None or meta.error is not None or not meta.partitions:
                continue
            if name in created and len(meta.partitions) < pending[name]:
                continue
            if len(meta.partitions) != pending[name]:
                log.warning(
                    "topic exists with another partition count",
                    topic=name,
                    partitions=len(meta.partitions),
                    requested=pending[name],
                )
            del pending[name]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics not visible in metadata in time: {sorted(pending)}")
        time.sleep(0.05)


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())
