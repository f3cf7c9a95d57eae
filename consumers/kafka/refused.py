"""Which errors of ``Producer.produce()`` belong to the one message being produced.

A message the producer refuses for its size or content (``MSG_SIZE_TOO_LARGE`` and the like) says
nothing about the producer or the broker: the caller dead-letters that message and goes on
(:mod:`consumers.pipeline.wire`). Every other error is the infrastructure's, and stops the caller.
"""

from __future__ import annotations

__all__ = ["MESSAGE_ERRORS", "refused_reason"]

MESSAGE_ERRORS = ("MSG_SIZE_TOO_LARGE", "INVALID_MSG_SIZE", "INVALID_MSG", "INVALID_RECORD")
"""librdkafka error codes of a produce() call that belong to the message, not to the infrastructure."""


def refused_reason(error: BaseException) -> str | None:
    """The reason when ``error`` (raised by ``produce()``) refuses the message itself, else None."""
    from confluent_kafka import KafkaError, KafkaException

    if not isinstance(error, KafkaException) or not error.args:
        return None
    kafka_error = error.args[0]
    if not isinstance(kafka_error, KafkaError):
        return None
    codes = {getattr(KafkaError, name, None) for name in MESSAGE_ERRORS} - {None}
    return kafka_error.str() if kafka_error.code() in codes else None
