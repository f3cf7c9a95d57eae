"""The worker's Kafka clients: the output producer (transactional when asked), the input consumer, and
the checkpoint that ties them (flush → confirm → commit, :mod:`consumers.worker.checkpoint`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from consumers.worker.checkpoint import Checkpoint
from consumers.worker.settings import WorkerSettings

__all__ = ["CONSUMER_DEFAULTS", "make_clients"]

# librdkafka waits for its outstanding long-poll fetch before fetching a resumed partition: keep it short
CONSUMER_DEFAULTS = {"fetch.wait.max.ms": 100}


def make_clients(
    settings: WorkerSettings, on_delivered: Callable[[str, float | None], None]
) -> tuple[Any, Any, Checkpoint]:
    """(producer, consumer, checkpoint) for ``settings``; ``on_delivered(topic, input_ts)`` is called for
    every confirmed output."""
    from confluent_kafka import Consumer, Producer

    overrides = dict(settings.producer_overrides)
    if settings.transactional:
        overrides.setdefault("transactional.id", f"{settings.group_id}-{uuid.uuid4().hex[:12]}")
    producer = Producer(settings.kafka.producer_config(**overrides))
    if settings.transactional:
        producer.init_transactions(settings.flush_timeout_s)
    consumer_overrides = {**CONSUMER_DEFAULTS, **settings.consumer_overrides}
    consumer = Consumer(settings.kafka.consumer_config(settings.group_id, **consumer_overrides))
    checkpoint = Checkpoint(
        producer,
        consumer,
        flush_timeout_s=settings.flush_timeout_s,
        on_delivered=on_delivered,
        transactional=settings.transactional,
    )
    return producer, consumer, checkpoint
