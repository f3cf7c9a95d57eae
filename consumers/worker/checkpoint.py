"""The checkpoint: produce outputs → confirm every delivery → commit the input offsets they came from.

The order is the whole at-least-once guarantee, so here it is in one place (``Checkpoint.commit``)::

    left = producer.flush(timeout)          # 1. every output of the batch has left the queue...
    if left or self._failures: raise         # 2. ...and each delivery callback reported success
    consumer.commit(offsets, sync)           # 3. only then move the group's offsets past the inputs

A failed or timed-out delivery raises :class:`DeliveryError` *before* the commit: the offsets stay where
they were and the inputs are read again after a restart (the idempotent producer has already retried
for ``message.timeout.ms``, so retrying here would only reorder records). A failed commit is logged and
the offsets stay pending: the next commit carries them (offsets only move forward), or a rebalance
hands the partition to a worker that reads the inputs again — duplicates, never losses.

In transactional mode (``transactional=True``, producer created with a ``transactional.id`` and
``init_transactions()`` called) the same three steps become: produce inside a transaction →
``send_offsets_to_transaction`` → ``commit_transaction`` (flushes and confirms delivery itself), so
outputs and offsets become visible together (read_committed consumers see each input's outputs once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from consumers.kafka.refused import refused_reason

__all__ = ["Checkpoint", "DeliveryError", "OutputRefused"]

if TYPE_CHECKING:
    from consumers.pipeline.message_path import Output

log = structlog.get_logger(__name__)

OnDelivered = Callable[[str, float | None], None]
"""Called per delivered output with its topic and input timestamp (epoch seconds, None if unknown)."""


class DeliveryError(RuntimeError):
    """Outputs were not acknowledged by the broker: their inputs must not be committed."""


class OutputRefused(ValueError):
    """``produce()`` refused this one output for its size or content; the producer and the broker are
    fine (the caller dead-letters the message: :meth:`consumers.pipeline.message_path.Output.rejected`)."""


class Checkpoint:
    """Tracks outputs in flight and the input offsets they cover; commits in the safe order.

    Args:
        producer: a ``confluent_kafka.Producer`` (idempotent, acks=all).
        consumer: the ``confluent_kafka.Consumer`` whose group offsets are committed.
        flush_timeout_s: longest wait for outstanding deliveries.
        on_delivered: optional observer of each acknowledged output.
        transactional: outputs and offsets are committed in one Kafka transaction.
    """

    def __init__(
        self,
        producer: Any,
        consumer: Any,
        *,
        flush_timeout_s: float = 30.0,
        on_delivered: OnDelivered | None = None,
        transactional: bool = False,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.flush_timeout_s = flush_timeout_s
        self.transactional = transactional
        self._on_delivered = on_delivered
        self._offsets: dict[tuple[str, int], int] = {}  # next offset to read, per input partition
        self._failures: list[str] = []
        self._in_transaction = False
        self.commits = 0

    @property
    def pending(self) -> dict[tuple[str, int], int]:
        """Offsets (next to read) that are not committed yet, per (topic, partition)."""
        return dict(self._offsets)

    def produce(self, topic: str, value: bytes, key: bytes | None, input_ts: float | None = None) -> None:
        """Queue one output; its delivery is checked at the next :meth:`commit`.

        Raises:
            OutputRefused: the producer refused this output itself (e.g. over ``message.max.bytes``).
            KafkaException: any other produce error (the producer or the broker): stop.
        """
        from confluent_kafka import KafkaException

        if self.transactional and not self._in_transaction:
            self.producer.begin_transaction()
            self._in_transaction = True

        def delivered(error: Any, _msg: Any) -> None:
            if error is not None:
                self._failures.append(f"{topic}: {error}")
            elif self._on_delivered is not None:
                self._on_delivered(topic, input_ts)

        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=delivered)
                return
            except BufferError:  # local queue full: serve delivery reports, then try again
                self.producer.poll(0.1)
            except KafkaException as error:
                reason = refused_reason(error)
                if reason is None:
                    raise
                raise OutputRefused(reason) from None

    def produce_output(self, output: Output, topics: Mapping[str, str], max_output_bytes: int) -> Output:
        """Produce one output to ``topics[output.kind]``; one the producer refuses (its size or content)
        is dead-lettered instead, and the partition moves on. A refused dead letter, or any other
        produce error, raises (the worker stops). Returns what was produced."""
        assert output.value is not None
        ts = output.envelope.epoch_seconds
        try:
            self.produce(topics[output.kind], output.value, output.key, ts)
        except OutputRefused as error:
            log.warning(
                "output refused; its message is dead-lettered", where=output.envelope.where, error=str(error)
            )
            output = output.rejected(
                f"the producer refused its {output.kind} record: {error}", max_output_bytes
            )
            assert output.value is not None
            self.produce(topics["dead_letter"], output.value, output.key, ts)
        return output

    def mark_processed(self, topic: str, partition: int, offset: int) -> None:
        """The input at ``offset`` has all its outputs queued; commit up to it next time."""
        key = (topic, partition)
        self._offsets[key] = max(self._offsets.get(key, 0), offset + 1)

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop pending offsets of partitions this worker lost (another member owns them now)."""
        for key in partitions:
            self._offsets.pop(key, None)

    def commit(self) -> bool:
        """Flush → confirm delivery → commit. True when offsets were committed (or none were pending).

        Raises:
            DeliveryError: an output was not delivered; nothing is committed.
        """
        from confluent_kafka import KafkaException, TopicPartition

        if self.transactional:
            return self._commit_transaction()
        started = time.monotonic()
        left = self.producer.flush(self.flush_timeout_s)
        if left:
            raise DeliveryError(f"{left} outputs not delivered within {self.flush_timeout_s:g} s")
        if self._failures:
            raise DeliveryError(f"{len(self._failures)} outputs failed, first: {self._failures[0]}")
        if not self._offsets:
            return True
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(self._offsets.items())]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            log.warning("commit failed; offsets stay pending", error=str(error.args[0]))
            return False
        for tp in offsets:
            if self._offsets.get((tp.topic, tp.partition)) == tp.offset:
                del self._offsets[(tp.topic, tp.partition)]
        self.commits += 1
        log.debug("committed", offsets=len(offsets), seconds=round(time.monotonic() - started, 4))
        return True

    def _commit_transaction(self) -> bool:
        from confluent_kafka import TopicPartition

        if not self._offsets and not self._in_transaction:
            return True
        if not self._in_transaction:
            self.producer.begin_transaction()
            self._in_transaction = True
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(self._offsets.items())]
        try:
            if offsets:
                metadata = self.consumer.consumer_group_metadata()
                self.producer.send_offsets_to_transaction(offsets, metadata, self.flush_timeout_s)
            self.producer.commit_transaction(self.flush_timeout_s)
        except Exception as error:
            raise DeliveryError(f"transaction not committed: {error}") from error
        finally:
            self._in_transaction = False
        if self._failures:  # cannot happen after a successful commit_transaction; be loud if it does
            raise DeliveryError(f"{len(self._failures)} outputs failed, first: {self._failures[0]}")
        self._offsets.clear()
        self.commits += 1
        return True
