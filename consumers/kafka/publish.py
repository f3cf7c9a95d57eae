"""Publish one record and wait until the broker confirms it: how an operator's update reaches every worker.

The record is produced with ``acks=all`` and idempotence, keyed (an update's key is its model id, so a
compacted topic keeps the newest update per model), and :func:`publish_record` returns only once the
delivery report says it is written — or raises :class:`PublishError` with one line saying why. With
``admin_config`` the topic is created first when it is missing (one partition, compacted).
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["PublishError", "publish_record"]

log = structlog.get_logger(__name__)

_QUIET = 2  # librdkafka log level: critical only (connection errors come back through error_cb)


class PublishError(RuntimeError):
    """The record was not confirmed by the broker; the message is one line, for the user."""


def publish_record(
    topic: str,
    key: bytes,
    value: bytes,
    producer_config: dict[str, Any],
    *,
    what: str = "record",
    timeout: float = 30.0,
    admin_config: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Produce ``value`` to ``topic`` under ``key`` and wait for the broker's ack; ``(partition, offset)``.

    ``what`` names the record in errors ("trigger update not confirmed ..."). Raises PublishError when
    the topic cannot be found or created, or the record is not confirmed within ``timeout`` seconds."""
    from confluent_kafka import KafkaException, Producer

    from consumers.kafka.topics import ensure_topics

    errors: list[str] = []
    if admin_config is not None:
        try:
            ensure_topics(
                {**admin_config, "log_level": _QUIET, "error_cb": lambda err: errors.append(err.str())},
                {topic: 1},
                timeout=timeout,
                topic_config={"cleanup.policy": "compact"},
            )
        except (KafkaException, TimeoutError, ValueError) as err:
            detail = err.args[0].str() if isinstance(err, KafkaException) else str(err)
            where = admin_config.get("bootstrap.servers")
            raise PublishError(f"cannot find or create topic {topic!r} at {where}: {detail}") from None
    config = {
        **producer_config,
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": int(timeout * 1000),
        "error_cb": lambda err: errors.append(err.str()),
        "log_level": _QUIET,
    }
    producer = Producer(config)
    reports: list[tuple[Any, Any]] = []
    try:
        producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: reports.append((err, msg)))
        remaining = producer.flush(timeout + 5.0)
    except (KafkaException, BufferError) as err:
        raise PublishError(f"cannot produce to {topic!r}: {err}") from None
    finally:
        producer.purge()  # nothing is left after a confirmed delivery; drops an undelivered one
        producer.close()
    if remaining or not reports:
        detail = f": {errors[-1]}" if errors else ""
        raise PublishError(f"{what} not confirmed by the broker within {timeout:g} s{detail}")
    err, msg = reports[0]
    if err is not None:
        cause = f" (last error: {errors[-1]})" if errors else ""
        raise PublishError(f"{what} not delivered to {topic!r}: {err.str()}{cause}")
    log.info(f"{what} published", topic=topic, partition=msg.partition(), offset=msg.offset())
    return int(msg.partition()), int(msg.offset())
