"""Threshold hot reload: follow the thresholds topic and apply the newest update for our model.

:class:`ThresholdSelector` (Kafka-free) decides: an update applies when it decodes, names this worker's
model and is newer than the best seen so far by ``(created_at, version)``. Anything else is ignored
with a warning and the last good threshold stays.

:class:`ThresholdListener` runs a consumer in a daemon thread. It joins no group: it ``assign()``s every
partition of the topic from the beginning (each worker instance reads the whole topic, so a restart
recovers the newest threshold without relying on compaction) and applies each new winner through a
callback, normally ``defender.set_threshold`` — an atomic reference swap, so the batch being scored
keeps the threshold it started with and the next one uses the new value. ``fetch.wait.max.ms`` is
100 ms and the poll timeout 100 ms, so an update applies well within a second of being written.
:meth:`ThresholdListener.wait_caught_up` blocks until every partition has reported end-of-partition
(librdkafka's partition EOF, which is right on Tansu too, unlike its watermarks) so the first batch
is judged with the newest published threshold.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from consumers.kafka.settings import KafkaSettings
from consumers.pipeline.thresholds import threshold_from_update
from schemas import SchemaError, ThresholdUpdate, decode
from stream_guard.threshold import Threshold

__all__ = ["ThresholdListener", "ThresholdSelector"]

log = structlog.get_logger(__name__)

ApplyThreshold = Callable[[Threshold, ThresholdUpdate], None]


class ThresholdSelector:
    """Keeps the winning ThresholdUpdate for ``model_id``: greatest ``(created_at, version)``."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.best: ThresholdUpdate | None = None

    def offer(self, value: bytes | None, where: str = "") -> tuple[Threshold, ThresholdUpdate] | None:
        """The core Threshold and its update when ``value`` is the new winner, else None (logged)."""
        try:
            update = decode(ThresholdUpdate, value)
        except SchemaError as error:
            log.warning("threshold update ignored: invalid", reason=error.reason, at=where)
            return None
        if update.model_id != self.model_id:
            log.warning(
                "threshold update ignored: other model",
                update_model=update.model_id,
                model=self.model_id,
                version=update.version,
                at=where,
            )
            return None
        if self.best is not None and (update.created_at, update.version) <= (
            self.best.created_at,
            self.best.version,
        ):
            log.info("threshold update ignored: not newer", version=update.version, current=self.best.version)
            return None
        try:
            threshold = threshold_from_update(update)
        except ValueError as error:
            log.warning("threshold update ignored: unusable", version=update.version, reason=str(error))
            return None
        self.best = update
        return threshold, update


class ThresholdListener:
    """A daemon thread that reads ``topic`` from the beginning and applies new winning thresholds.

    Args:
        kafka: connection settings.
        topic: the thresholds topic.
        model_id: only updates for this model apply.
        apply: called (in the listener thread) with each new winning Threshold and its update.
        poll_s: poll timeout of the loop (also how fast ``stop`` is noticed).
        consumer_overrides: extra librdkafka properties.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        model_id: str,
        apply: ApplyThreshold,
        *,
        poll_s: float = 0.1,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.selector = ThresholdSelector(model_id)
        self._kafka = kafka
        self._apply = apply
        self._poll_s = poll_s
        self._overrides = dict(consumer_overrides or {})
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="threshold-listener", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> ThresholdListener:
        self._thread.start()
        return self

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait until the topic was read to its end once (or the listener failed); True if caught up."""
        return self._caught_up.wait(timeout) and self.error is None

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._consume()
        except Exception as error:  # the worker keeps its last good threshold
            self.error = error
            log.error("threshold listener stopped", topic=self.topic, error=repr(error))
        finally:
            self._caught_up.set()

    def _consume(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        config = self._kafka.consumer_config(
            f"stream-guard-thresholds-{uuid.uuid4().hex[:12]}",  # required by the client; never joined
            **{"enable.partition.eof": True, "fetch.wait.max.ms": 100, **self._overrides},
        )
        consumer = Consumer(config)
        try:
            partitions = self._partitions(consumer)
            if partitions is None:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            pending_eof = set(partitions)
            while not self._stop.is_set():
                for msg in consumer.consume(100, self._poll_s):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending_eof.discard(msg.partition())
                            if not pending_eof and not self._caught_up.is_set():
                                log.info("thresholds topic read to its end", topic=self.topic)
                                self._caught_up.set()
                        else:
                            log.warning("thresholds consumer error", error=str(error))
                        continue
                    where = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
                    chosen = self.selector.offer(msg.value(), where)
                    if chosen is not None:
                        self._apply(*chosen)
        finally:
            consumer.close()

    def _partitions(self, consumer: Any) -> list[int] | None:
        """Partition ids of the topic; None (after a warning) when it does not exist or stop was asked."""
        warned = False
        while not self._stop.is_set():
            meta = consumer.list_topics(timeout=10).topics.get(self.topic)  # all topics: no auto-create
            if meta is not None and meta.error is None and meta.partitions:
                return sorted(meta.partitions)
            if not warned:
                log.warning("thresholds topic not found; retrying, start threshold stays", topic=self.topic)
                self._caught_up.set()  # nothing to wait for
                warned = True
            self._stop.wait(2.0)
        return None
