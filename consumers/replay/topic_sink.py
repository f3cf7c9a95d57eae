"""Replay output to topics: clean verdicts to the predictions topic, flagged ones to the audit topic,
dead letters to the dead-letter topic (dropped when none is given), as the worker routes them.

Each record is keyed by its input message's key (else its id), so records of one key stay in one
partition. The producer is idempotent with ``acks=all`` (``KafkaSettings.producer_config``); ``close``
flushes and raises if any record was not delivered, so a replay that returns has published everything.
A record the topics cannot take (over the producer's ``message.max.bytes``, or refused by ``produce``)
becomes its message's dead letter, as in the worker (:mod:`consumers.pipeline.wire`).
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumers.kafka.refused import refused_reason
from consumers.kafka.settings import KafkaSettings
from consumers.pipeline.message_path import Output
from consumers.pipeline.wire import message_max_bytes
from schemas import AuditRecord, DeadLetterRecord
from stream_guard.errors import StreamGuardError

FLUSH_TIMEOUT_S = 60.0


class TopicSink:
    def __init__(
        self,
        settings: KafkaSettings,
        predictions_topic: str,
        audit_topic: str | None = None,
        dead_letter_topic: str | None = None,
    ) -> None:
        self.predictions_topic = predictions_topic
        self.audit_topic = audit_topic or predictions_topic
        self.dead_letter_topic = dead_letter_topic
        config = settings.producer_config()
        self._producer = Producer(config)
        self._max_bytes = message_max_bytes(config)
        self._failures: list[str] = []
        self.produced = 0

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err.str()}")

    def _topic(self, record: object) -> str | None:
        if isinstance(record, DeadLetterRecord):
            topic = self.dead_letter_topic
        elif isinstance(record, AuditRecord):
            topic = self.audit_topic
        else:
            topic = self.predictions_topic
        return topic

    def write(self, judged: Output) -> None:
        judged = judged.wired(self._max_bytes)
        try:
            self._produce(judged)
        except KafkaException as error:
            reason = refused_reason(error)
            if reason is None:
                raise
            judged = judged.rejected(f"the producer refused its record: {reason}", self._max_bytes)
            self._produce(judged)  # a refused dead letter raises: the limits are wrong, not the message

    def _produce(self, judged: Output) -> None:
        record, value = judged.record, judged.value
        topic = self._topic(record)
        if topic is None:
            return
        assert value is not None
        key = judged.key if judged.key is not None else (record.id or "").encode("utf-8")
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.1)
        self._producer.poll(0)
        self.produced += 1

    def close(self) -> None:
        left = self._producer.flush(FLUSH_TIMEOUT_S)
        if left:
            raise StreamGuardError(f"{left} records were not delivered within {FLUSH_TIMEOUT_S:g} s")
        if self._failures:
            raise StreamGuardError(f"{len(self._failures)} records failed delivery: {self._failures[0]}")

    def abort(self) -> None:
        self._producer.flush(5.0)
