"""Hot reload of threshold and known-trigger updates: follow a topic, apply the newest update for our model.

Both kinds travel the same way (a whole record per update, keyed by model id, latest wins) and are
applied by the same rule, so one listener serves both; an :class:`UpdateKind` says which record it
reads and how it becomes what the defender takes (:data:`THRESHOLDS`: a ``ThresholdUpdate`` becomes a
``Threshold``; :data:`TRIGGERS`: a ``TriggerUpdate`` becomes a ``TriggerSet``).

:class:`UpdateSelector` (Kafka-free) decides: an update applies when it decodes, names this worker's
model and is newer than the best seen so far by ``(created_at, version)``. Anything else is ignored
with a warning and the last good update stays.

:class:`UpdateListener` runs a consumer in a daemon thread, one per topic. It joins no group: it
``assign()``s every partition of the topic from the beginning (each worker instance reads the whole
topic, so a restart recovers the newest update without relying on compaction) and applies each new
winner through a callback, normally ``defender.set_threshold`` / ``defender.set_triggers`` — an atomic
reference swap, so the batch being scored keeps what it started with and the next one uses the new
update. ``fetch.wait.max.ms`` is 100 ms and the poll timeout 100 ms, so an update applies well within a
second of being written. :meth:`UpdateListener.wait_caught_up` blocks until every partition has reported
end-of-partition (librdkafka's partition EOF, which is right on Tansu too, unlike its watermarks) so the
first batch is judged with the newest published update.

:func:`latest_update` reads a topic to its end once and returns the winner: what the operator commands
(``stream-guard triggers list | add | revoke``) start from.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import structlog

from consumers.kafka.settings import KafkaSettings
from consumers.pipeline.thresholds import threshold_from_update
from consumers.pipeline.triggers import trigger_set_from_update
from schemas import SchemaError, ThresholdUpdate, TriggerUpdate, decode
from stream_guard.threshold import Threshold
from stream_guard.triggers.known import TriggerSet

__all__ = ["THRESHOLDS", "TRIGGERS", "UpdateKind", "UpdateListener", "UpdateSelector", "latest_update"]

log = structlog.get_logger(__name__)


class _Update(Protocol):
    @property
    def model_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


U = TypeVar("U", bound=_Update)
C = TypeVar("C")


@dataclass(frozen=True)
class UpdateKind(Generic[U, C]):
    """One kind of update: its name in logs, its wire record, and how the defender's value is made
    from it (raising ValueError for an update the core refuses)."""

    name: str
    record: type[U]
    convert: Callable[[U], C]


THRESHOLDS: UpdateKind[ThresholdUpdate, Threshold] = UpdateKind(
    "threshold", ThresholdUpdate, threshold_from_update
)
TRIGGERS: UpdateKind[TriggerUpdate, TriggerSet] = UpdateKind(
    "trigger", TriggerUpdate, trigger_set_from_update
)


class UpdateSelector(Generic[U, C]):
    """Keeps the winning update of ``kind`` for ``model_id``: greatest ``(created_at, version)``."""

    def __init__(self, kind: UpdateKind[U, C], model_id: str) -> None:
        self.kind = kind
        self.model_id = model_id
        self.best: U | None = None
        self.offered = 0  # values seen, applied or not

    def offer(self, value: bytes | None, where: str = "") -> tuple[C, U] | None:
        """The converted value and its update when ``value`` is the new winner, else None (logged)."""
        self.offered += 1
        name = self.kind.name
        try:
            update = decode(self.kind.record, value)
        except SchemaError as error:
            log.warning(f"{name} update ignored: invalid", reason=error.reason, at=where)
            return None
        if update.model_id != self.model_id:
            log.warning(
                f"{name} update ignored: other model",
                update_model=update.model_id,
                model=self.model_id,
                version=update.version,
                at=where,
            )
            return None
        best = self.best
        if best is not None and (update.created_at, update.version) <= (best.created_at, best.version):
            log.info(f"{name} update ignored: not newer", version=update.version, current=best.version)
            return None
        try:
            converted = self.kind.convert(update)
        except ValueError as error:
            log.warning(f"{name} update ignored: unusable", version=update.version, reason=str(error))
            return None
        self.best = update
        return converted, update


class UpdateListener(Generic[U, C]):
    """A daemon thread that reads ``topic`` from the beginning and applies each new winning update.

    Args:
        kafka: connection settings.
        topic: the thresholds or triggers topic.
        model_id: only updates for this model apply.
        kind: :data:`THRESHOLDS` or :data:`TRIGGERS`.
        apply: called (in the listener thread) with each new winner, converted, and its update.
        poll_s: poll timeout of the loop (also how fast ``stop`` is noticed).
        consumer_overrides: extra librdkafka properties.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        model_id: str,
        kind: UpdateKind[U, C],
        apply: Callable[[C, U], None],
        *,
        poll_s: float = 0.1,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.kind = kind
        self.selector = UpdateSelector(kind, model_id)
        self._kafka = kafka
        self._apply = apply
        self._poll_s = poll_s
        self._overrides = dict(consumer_overrides or {})
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{kind.name}-listener", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> UpdateListener[U, C]:
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
        except Exception as error:  # the worker keeps its last good update
            self.error = error
            log.error(f"{self.kind.name} listener stopped", topic=self.topic, error=repr(error))
        finally:
            self._caught_up.set()

    def _consume(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        config = self._kafka.consumer_config(
            f"stream-guard-{self.kind.name}s-{uuid.uuid4().hex[:12]}",  # required by the client; never joined
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
                                log.info(f"{self.kind.name}s topic read to its end", topic=self.topic)
                                self._caught_up.set()
                        else:
                            log.warning(f"{self.kind.name}s consumer error", error=str(error))
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
                log.warning(
                    f"{self.kind.name}s topic not found; retrying, the start value stays", topic=self.topic
                )
                self._caught_up.set()  # nothing to wait for
                warned = True
            self._stop.wait(2.0)
        return None


def latest_update(
    kafka: KafkaSettings, topic: str, model_id: str, kind: UpdateKind[U, C], *, idle_timeout: float = 10.0
) -> U | None:
    """The newest valid update of ``kind`` for ``model_id`` on ``topic`` (read once, to its end), as a
    worker would select it; None when there is none. Raises confluent_kafka.KafkaException when the
    topic cannot be read (e.g. it does not exist)."""
    from consumers.kafka.topic_reader import TopicRange, read_topic

    selector = UpdateSelector(kind, model_id)
    for envelope in read_topic(kafka, TopicRange(topic=topic, idle_timeout=idle_timeout)):
        selector.offer(envelope.value, envelope.where)
    return selector.best
