"""The envelope: one input message as read — raw bytes, key, where it came from — built once.

Every reader makes envelopes: the worker from the messages it polls, replay from topic ranges and
files. The rest of the message path (:mod:`consumers.pipeline.message_path`) only ever sees envelopes,
so a replayed message and a live one take the same path. Kafka-free: :meth:`Envelope.from_kafka`
reads a confluent-kafka ``Message`` through its accessor methods without importing the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas import SourceRef

__all__ = ["Envelope"]

_TIMESTAMP_NOT_AVAILABLE = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE


@dataclass(frozen=True, slots=True)
class Envelope:
    """One input message: its raw value and key, its Kafka coordinates and the broker's timestamp.

    value:      the message value, byte for byte (None for a Kafka null value).
    key:        the message key (None when the message has none; file lines have none).
    source:     topic/partition/offset/key of a Kafka message; None for file input.
    timestamp:  the Kafka record's timestamp (UTC), None when unknown (files, no timestamp).
    where:      for people: ``"in.jsonl:12"`` or ``"topic[0]@42"``.
    """

    value: bytes | None
    key: bytes | None = None
    source: SourceRef | None = None
    timestamp: datetime | None = None
    where: str = ""

    @classmethod
    def from_kafka(cls, msg: Any) -> Envelope:
        """The envelope of a confluent-kafka message (not an error event)."""
        topic, partition, offset, key = msg.topic(), msg.partition(), msg.offset(), msg.key()
        kind, millis = msg.timestamp()
        at = (
            datetime.fromtimestamp(millis / 1000, tz=UTC)
            if kind != _TIMESTAMP_NOT_AVAILABLE and millis >= 0
            else None
        )
        return cls(
            msg.value(),
            key,
            SourceRef.from_kafka(topic, partition, offset, key),
            at,
            f"{topic}[{partition}]@{offset}",
        )

    @property
    def partition_key(self) -> tuple[str, int] | None:
        """(topic, partition) of a Kafka message, None for file input."""
        source = self.source
        if source is None or source.topic is None or source.partition is None:
            return None
        return (source.topic, source.partition)

    @property
    def epoch_seconds(self) -> float | None:
        """The Kafka timestamp as epoch seconds (end-to-end latency), None when unknown."""
        return self.timestamp.timestamp() if self.timestamp is not None else None
