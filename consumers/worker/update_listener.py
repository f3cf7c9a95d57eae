"""Hot reload of threshold and known-trigger updates: follow a topic, apply the newest update for our model.

Both kinds travel the same way (a whole record per update, keyed by model id, latest wins) and are
applied by the same rule, so one listener serves both. Which update wins is decided by
:class:`~consumers.worker.update_selector.UpdateSelector` (Kafka-free; re-exported here with
:data:`THRESHOLDS`, :data:`TRIGGERS` and :class:`UpdateKind`): it decodes, names this worker's model,
passes the worker's :class:`~consumers.pipeline.update_policy.UpdatePolicy` (signature, skew, value
sanity) and is newer by ``(created_at, version)``; anything else is ignored, logged and counted by
reason (``on_reject``), and the last good update stays.

:class:`UpdateListener` runs a consumer in a daemon thread, one per topic. It joins no group: it
``assign()``s every partition of the topic from the beginning (each worker instance reads the whole
topic, so a restart recovers the newest update without relying on compaction) and applies each new
winner through a callback, normally ``defender.set_threshold`` / ``defender.set_triggers`` — an atomic
reference swap, so the batch being scored keeps what it started with and the next one uses the new
update. ``fetch.wait.max.ms`` is 100 ms and the poll timeout 100 ms, so an update applies well within a
second of being written. :meth:`UpdateListener.wait_caught_up` blocks until every partition has reported
end-of-partition (librdkafka's partition EOF, which is right on Tansu too, unlike its watermarks) so the
first batch is judged with the newest published update.

The listener never goes deaf: when the broker cannot be reached (at start, or a fatal client error
later) it closes its consumer, waits (0.5 s, doubling up to 30 s, reset once connected) and starts over
from the offsets it had read, for as long as the worker runs. ``on_connected`` is told each change of
state: connected once the topic's metadata was read; disconnected when, after the client reported
that no broker is reachable (all brokers down, or authentication failing), a metadata probe fails too
(the report can be stale: one queued before the broker came up); connected again when a probe, every
2 s meanwhile, succeeds.

:func:`latest_update` reads a topic to its end once and returns the winner: what the operator commands
(``stream-guard triggers list | add | revoke``) start from.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic

import structlog

from consumers.kafka.settings import KafkaSettings
from consumers.pipeline.update_policy import ORDERING_ONLY, UpdatePolicy
from consumers.worker.update_selector import THRESHOLDS, TRIGGERS, C, U, UpdateKind, UpdateSelector

__all__ = [
    "THRESHOLDS",
    "TRIGGERS",
    "Backoff",
    "UpdateKind",
    "UpdateListener",
    "UpdateSelector",
    "latest_update",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnection attempts: ``initial`` seconds, doubling up to ``maximum``, ±``jitter``."""

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (0 for the first)."""
        base = min(self.maximum, self.initial * 2.0 ** min(attempt, 32))
        return base * random.uniform(1.0 - self.jitter, 1.0 + self.jitter)


# one connection closing (_TRANSPORT: Tansu and Kafka reap idle ones) is not the broker being gone
_DISCONNECTED_CODES = ("_ALL_BROKERS_DOWN", "_AUTHENTICATION")
_PROBE_S = 2.0  # while disconnected: how often the listener checks that the broker is back


class UpdateListener(Generic[U, C]):
    """A daemon thread that reads ``topic`` from the beginning and applies each new winning update.

    Args:
        kafka: connection settings.
        topic: the thresholds or triggers topic.
        model_id: only updates for this model apply.
        kind: :data:`THRESHOLDS` or :data:`TRIGGERS`.
        apply: called (in the listener thread) with each new winner, converted, and its update.
        policy: which updates may apply (see :class:`UpdateSelector`).
        on_reject: called (in the listener thread) with the reason of each ignored update.
        on_connected: called (in the listener thread) with True / False at each change of connection.
        poll_s: poll timeout of the loop (also how fast ``stop`` is noticed).
        metadata_timeout_s: longest wait for the topic's metadata per attempt.
        backoff: waits between attempts while the broker cannot be reached.
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
        policy: UpdatePolicy = ORDERING_ONLY,
        on_reject: Callable[[str], None] | None = None,
        on_connected: Callable[[bool], None] | None = None,
        poll_s: float = 0.1,
        metadata_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.kind = kind
        self.selector = UpdateSelector(kind, model_id, policy, on_reject=on_reject)
        self._kafka = kafka
        self._apply = apply
        self._on_connected = on_connected
        self._poll_s = poll_s
        self._metadata_timeout_s = metadata_timeout_s
        self._backoff = backoff or Backoff()
        self._overrides = dict(consumer_overrides or {})
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{kind.name}-listener", daemon=True)
        self._next_offsets: dict[int, int] = {}  # partition → next offset to read (kept across attempts)
        self.connected = False
        self._was_connected = False  # during the current attempt
        self._suspect = False  # the client reported all brokers down: probe
        self.attempts = 0  # consumers created (1 + reconnections)
        self.error: BaseException | None = None  # what ended the last attempt; None once connected

    def start(self) -> UpdateListener[U, C]:
        self._thread.start()
        return self

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait until the topic was read to its end once (or an attempt failed); True if caught up."""
        return self._caught_up.wait(timeout) and self.error is None

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self.attempts += 1
            try:
                self._consume()
                return  # stop was asked
            except Exception as error:  # the worker keeps its last good update meanwhile
                self.error = error
                self._set_connected(False)
                self._caught_up.set()  # nothing to wait for at start: the start value stays
                failures = 0 if self._was_connected else failures
                wait_s = self._backoff.delay(failures)
                failures += 1
                log.warning(
                    f"{self.kind.name} listener cannot read its topic; retrying",
                    topic=self.topic,
                    error=repr(error),
                    retry_in_s=round(wait_s, 2),
                )
                self._stop.wait(wait_s)

    def _set_connected(self, connected: bool) -> None:
        if connected:
            self.error = None
            self._was_connected = True
        if connected == self.connected:
            return
        self.connected = connected
        state = "connected" if connected else "disconnected"
        log.info(f"{self.kind.name} listener {state}", topic=self.topic)
        if self._on_connected is not None:
            self._on_connected(connected)

    def _consume(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

        self._was_connected = False
        config = self._kafka.consumer_config(
            f"stream-guard-{self.kind.name}s-{uuid.uuid4().hex[:12]}",  # required by the client; never joined
            **{"enable.partition.eof": True, "fetch.wait.max.ms": 100, **self._overrides},
        )
        down = {getattr(KafkaError, name) for name in _DISCONNECTED_CODES if hasattr(KafkaError, name)}
        forward = config.get("error_cb")  # the configured one (structlog routing) still sees every error

        def on_error(error: Any) -> None:
            if error.code() in down:
                self._suspect = True  # checked by a probe in the loop (not inside this callback)
            if forward is not None:
                forward(error)

        config["error_cb"] = on_error
        consumer = Consumer(config)
        try:
            partitions = self._partitions(consumer)
            if partitions is None:
                return
            at = self._next_offsets
            consumer.assign([TopicPartition(self.topic, p, at.get(p, OFFSET_BEGINNING)) for p in partitions])
            pending_eof = set(partitions)
            next_probe = 0.0
            while not self._stop.is_set():
                if self._suspect or (not self.connected and time.monotonic() >= next_probe):
                    self._suspect = False
                    self._probe(consumer)
                    next_probe = time.monotonic() + _PROBE_S
                for msg in consumer.consume(100, self._poll_s):
                    error = msg.error()
                    if error is not None:
                        if error.fatal():
                            raise KafkaException(error)
                        if error.code() == KafkaError._PARTITION_EOF:
                            self._set_connected(True)
                            pending_eof.discard(msg.partition())
                            if not pending_eof and not self._caught_up.is_set():
                                log.info(f"{self.kind.name}s topic read to its end", topic=self.topic)
                                self._caught_up.set()
                        elif error.code() in down:  # without an error_cb librdkafka reports it here
                            self._suspect = True
                        else:
                            log.warning(f"{self.kind.name}s consumer error", error=str(error))
                        continue
                    self._set_connected(True)
                    self._next_offsets[msg.partition()] = msg.offset() + 1
                    where = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
                    chosen = self.selector.offer(msg.value(), where)
                    if chosen is not None:
                        self._apply(*chosen)
        finally:
            consumer.close()

    def _probe(self, consumer: Any) -> None:
        """Connected when the cluster's metadata can be read, disconnected when it cannot."""
        try:
            consumer.list_topics(timeout=min(_PROBE_S, self._metadata_timeout_s))
        except Exception:  # unreachable
            self._set_connected(False)
            return
        self._set_connected(True)

    def _partitions(self, consumer: Any) -> list[int] | None:
        """Partition ids of the topic; None when stop was asked. Raises KafkaException when the broker
        cannot be reached (the caller retries); a missing topic is waited for here."""
        warned = False
        while not self._stop.is_set():
            # all topics, not just ours: asking for one topic by name may auto-create it
            meta = consumer.list_topics(timeout=self._metadata_timeout_s).topics.get(self.topic)
            self._set_connected(True)
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
    kafka: KafkaSettings,
    topic: str,
    model_id: str,
    kind: UpdateKind[U, C],
    *,
    idle_timeout: float = 10.0,
    policy: UpdatePolicy = ORDERING_ONLY,
) -> U | None:
    """The newest valid update of ``kind`` for ``model_id`` on ``topic`` (read once, to its end), as a
    worker with ``policy`` would select it; None when there is none. Raises
    confluent_kafka.KafkaException when the topic cannot be read (e.g. it does not exist)."""
    from consumers.kafka.topic_reader import TopicRange, read_topic

    selector = UpdateSelector(kind, model_id, policy)
    for envelope in read_topic(kafka, TopicRange(topic=topic, idle_timeout=idle_timeout)):
        selector.offer(envelope.value, envelope.where)
    return selector.best
