"""Read a range of a topic, partition by partition, for replay and audit (no consumer-group commits).

The reader assigns partitions itself (no group rebalance, nothing committed) and reads them **one after
another in partition order**, each from its start to its end, so the order of what it yields never
depends on broker timing. A partition starts at

- ``start_offset`` (inclusive) when given, else
- the first offset at or after ``from_timestamp_ms`` (``offsets_for_times``; needs a real Kafka: Tansu
  answers 0, i.e. the beginning), else
- the beginning;

and ends before ``end_offset`` (exclusive) when given, else at the partition's end as the broker reports
it when reading (librdkafka's partition-EOF event, which Tansu gets right, unlike watermarks). With
``follow`` the reader never ends a partition: it reads every partition at once and waits for new records
until ``max_messages`` or Ctrl-C (the order is then the broker's). ``idle_timeout`` ends a partition (or a
follow) that stays silent that long, a safety net against a broker that never reports the end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from consumers.kafka.settings import KafkaSettings
from consumers.pipeline.envelope import Envelope

POLL_S = 0.2


@dataclass(frozen=True)
class TopicRange:
    """Which part of a topic to read (see the module docstring)."""

    topic: str
    partitions: Sequence[int] | None = None  # None = all, in order
    start_offset: int | None = None
    end_offset: int | None = None
    from_timestamp_ms: int | None = None
    max_messages: int | None = None
    follow: bool = False
    idle_timeout: float = 10.0


def _consumer(settings: KafkaSettings) -> Consumer:
    config = settings.consumer_config(
        f"stream-guard-reader-{uuid.uuid4().hex[:12]}",  # never used to commit: partitions are assigned
        **{"enable.partition.eof": True, "enable.auto.commit": False},
    )
    return Consumer(config)


def topic_partitions(consumer: Consumer, topic: str, timeout: float = 10.0) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        reason = metadata.error if metadata is not None and metadata.error is not None else "no partitions"
        raise KafkaException(f"topic {topic!r} is not readable: {reason}")
    return sorted(metadata.partitions)


def _start(consumer: Consumer, spec: TopicRange, partition: int) -> int | None:
    """The first offset to read, or None when nothing is at or after the timestamp."""
    if spec.start_offset is not None:
        return spec.start_offset
    if spec.from_timestamp_ms is not None:
        found = consumer.offsets_for_times(
            [TopicPartition(spec.topic, partition, spec.from_timestamp_ms)], 10.0
        )
        offset = found[0].offset
        return offset if offset >= 0 else None
    return OFFSET_BEGINNING


def read_topic(settings: KafkaSettings, spec: TopicRange) -> Iterator[Envelope]:
    """The messages of the range, in the order described in the module docstring."""
    consumer = _consumer(settings)
    try:
        partitions = (
            list(spec.partitions) if spec.partitions is not None else topic_partitions(consumer, spec.topic)
        )
        budget = [spec.max_messages]
        if spec.follow:
            yield from _follow(consumer, spec, partitions, budget)
            return
        for partition in partitions:
            if budget[0] is not None and budget[0] <= 0:
                return
            yield from _one_partition(consumer, spec, partition, budget)
    finally:
        consumer.close()


def _one_partition(
    consumer: Consumer, spec: TopicRange, partition: int, budget: list[int | None]
) -> Iterator[Envelope]:
    start = _start(consumer, spec, partition)
    if start is None or (spec.end_offset is not None and start >= 0 and start >= spec.end_offset):
        return
    consumer.assign([TopicPartition(spec.topic, partition, start)])
    last = time.monotonic()
    try:
        while time.monotonic() - last < spec.idle_timeout:
            msg = consumer.poll(POLL_S)
            if msg is None:
                continue
            last = time.monotonic()
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return
                raise KafkaException(msg.error())
            if spec.end_offset is not None and msg.offset() >= spec.end_offset:
                return
            yield Envelope.from_kafka(msg)
            if budget[0] is not None:
                budget[0] -= 1
                if budget[0] <= 0:
                    return
            if spec.end_offset is not None and msg.offset() + 1 >= spec.end_offset:
                return
    finally:
        consumer.unassign()


def _follow(
    consumer: Consumer, spec: TopicRange, partitions: list[int], budget: list[int | None]
) -> Iterator[Envelope]:
    assignment = []
    for partition in partitions:
        start = _start(consumer, spec, partition)
        if start is not None:
            assignment.append(TopicPartition(spec.topic, partition, start))
    consumer.assign(assignment)
    last = time.monotonic()
    while spec.idle_timeout <= 0 or time.monotonic() - last < spec.idle_timeout:
        msg = consumer.poll(POLL_S)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(msg.error())
        last = time.monotonic()
        if spec.end_offset is not None and msg.offset() >= spec.end_offset:
            continue
        yield Envelope.from_kafka(msg)
        if budget[0] is not None:
            budget[0] -= 1
            if budget[0] <= 0:
                return
