"""``stream-guard triggers learn``: the calibration job's continuous half.

The workers put evidence on their records (``evidence``: confirmed flags and flipping probes, see
:mod:`stream_guard.trigger_memory`). The learn service reads the predictions and audit topics, feeds
that evidence to a :class:`~stream_guard.triggers.learner.TriggerLearner` (insertion tests on the clean
calibration texts, with the same model), and reads the workers' input topics too: their texts are
counted for recurring rare words and phrases (:mod:`stream_guard.triggers.recurrence`), which finds a
trigger that no attribution ranks first, often before the workers have scored its messages. It
publishes each promotion as the next whole
:class:`~schemas.TriggerUpdate` to the triggers topic (key = model id, acks=all, delivery confirmed).
Every worker follows that topic and removes the trigger from every later message. With an update key
(``STREAM_GUARD_UPDATE_KEY`` / ``_KEY_FILE``) each update is signed, and the set the service starts from
must be signed with it too (:mod:`consumers.pipeline.update_settings`).

State lives in Kafka: on start the service reads the newest trigger update for its model (its triggers
stay known, its revoked words are never learned) and every partition of the output topics from the
beginning (assigned, no consumer group, nothing committed), so a restart rebuilds the counts. It also
reads the newest threshold update for its model on the thresholds topic once: the learner bar the
calibration job measured there (``calibrate --scan-bar``) is its bar, as in the learning workers (which
follow later updates too; the service takes a newer one when it restarts).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from consumers.kafka.publish import publish_record
from consumers.kafka.settings import KafkaSettings
from consumers.pipeline.thresholds import learn_bar_values, learn_rule_for
from consumers.pipeline.triggers import update_from_learned
from consumers.pipeline.update_settings import UpdateChannelSettings, update_channel_from_env
from consumers.worker.update_listener import THRESHOLDS, TRIGGERS, latest_update
from schemas import (
    InputMessage,
    PredictionRecord,
    SchemaError,
    ThresholdUpdate,
    TriggerUpdate,
    decode,
    encode,
)
from stream_guard.errors import InvalidTextError
from stream_guard.torch_thread import run_on_torch_thread
from stream_guard.triggers.evidence import Evidence

if TYPE_CHECKING:
    from stream_guard.defender import Defender
    from stream_guard.triggers.learner import TriggerLearner
    from stream_guard.triggers.rule import LearnedTrigger, LearnRule

__all__ = ["TriggerLearnService", "evidence_of_record"]

log = structlog.get_logger(__name__)

_POLL_S = 0.2


def evidence_of_record(record: PredictionRecord) -> list[Evidence]:
    """The core's evidence from a prediction or audit record."""
    return [
        Evidence(
            message_id=record.id,
            word=e.word,
            window=tuple(e.window),
            position=e.position,
            label_before=e.label_before,
            label_after=e.label_after,
            confidence_drop=e.confidence_drop,
            probe=e.probe,
        )
        for e in record.evidence
    ]


class TriggerLearnService:
    """Learns triggers from the output topics and publishes them (see the module docstring).

    Args:
        kafka: the connection.
        defender: the model under watch (its ``model_id`` selects records and updates).
        clean_texts: clean calibration texts for the insertion test and the clean-rate check.
        topics: the worker's output topics to read evidence from (predictions and audit).
        input_topics: the workers' input topics, whose texts are counted for recurrence (none: evidence
            only).
        triggers_topic: where the updates go (the topic the workers follow).
        rule: the promotion rule (default: ``STREAM_GUARD_LEARN_*`` with the measured learner bar of the
            newest threshold update on ``thresholds_topic``, if any, as the workers apply it).
        thresholds_topic: where the calibration job publishes (read once, at start; None: not read).
        on_promotion: called with each newly learned trigger and the update that published it.
        update_channel: signing key and rules of the triggers topic (default: from the environment;
            :class:`~consumers.pipeline.update_settings.UpdateChannelError` when unusable).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        defender: Defender,
        clean_texts: Sequence[str],
        *,
        topics: Sequence[str],
        triggers_topic: str,
        input_topics: Sequence[str] = (),
        rule: LearnRule | None = None,
        thresholds_topic: str | None = None,
        on_promotion: Callable[[LearnedTrigger, TriggerUpdate], None] | None = None,
        update_channel: UpdateChannelSettings | None = None,
    ) -> None:
        self.channel = update_channel if update_channel is not None else update_channel_from_env()
        self.kafka = kafka
        self.defender = defender
        self.clean_texts = list(clean_texts)
        self.topics = list(topics)
        self.input_topics = list(input_topics)
        self.triggers_topic = triggers_topic
        self.rule = rule
        self.thresholds_topic = thresholds_topic
        self.on_promotion = on_promotion
        self.current: TriggerUpdate | None = None
        self.records = 0
        self.texts = 0
        self.learner: TriggerLearner | None = None
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the clean texts are labelled and the topics assigned

    def stop(self) -> None:
        self._stop.set()

    def _learner(self) -> TriggerLearner:
        from stream_guard.triggers.insertion import InsertionTest
        from stream_guard.triggers.learn_settings import learn_rule
        from stream_guard.triggers.learner import TriggerLearner

        def predict(texts: Sequence[str]) -> Any:
            return run_on_torch_thread(self.defender.predict_proba, texts)

        current = self.current
        return TriggerLearner.for_texts(
            InsertionTest(self.clean_texts, predict),
            self.rule or learn_rule(),
            known=[t.text for t in current.triggers] if current else [],
            revoked=list(current.revoked) if current else [],
        )

    def run(self, stop: threading.Event | None = None) -> None:
        """Read, learn and publish until :meth:`stop` (or ``stop`` is set); raises what stops it
        abnormally (a publication the broker did not confirm, a fatal Kafka error)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

        from consumers.kafka.topic_reader import topic_partitions

        model_id = self.defender.model_id
        try:
            self.current = latest_update(
                self.kafka,
                self.triggers_topic,
                model_id,
                TRIGGERS,
                idle_timeout=2.0,
                policy=self.channel.policy(),  # what the workers apply, and nothing else
            )
        except KafkaException:
            self.current = None  # no triggers topic yet: the first publication creates it
        if self.rule is None and self.thresholds_topic:
            self.rule = learn_rule_for(self._newest_threshold(model_id))
        learner = self.learner = self._learner()
        # the model's labels of the clean texts, now: not at the first insertion test, where they would
        # hold the first promotion back by one pass over the calibration texts
        _ = learner.test.clean_labels
        group = f"stream-guard-learner-{uuid.uuid4().hex[:12]}"  # never joined: partitions are assigned
        consumer = Consumer(self.kafka.consumer_config(group, **{"enable.auto.commit": False}))
        # every partition from the beginning, assigned (no group join: evidence is read at once)
        consumer.assign(
            [
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for topic in [*self.topics, *self.input_topics]
                for partition in topic_partitions(consumer, topic)
            ]
        )
        inputs = set(self.input_topics)
        self.ready.set()
        log.info(
            "trigger learner started",
            model=model_id,
            topics=self.topics,
            input_topics=self.input_topics,
            known=len(learner._known),
        )
        try:
            while not (self._stop.is_set() or (stop is not None and stop.is_set())):
                evidence: list[Evidence] = []
                texts: list[str] = []
                at = None
                for msg in consumer.consume(500, _POLL_S):
                    error = msg.error()
                    if error is not None:
                        if error.fatal():
                            raise KafkaException(error)
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer error", error=str(error))
                        continue
                    if msg.topic() in inputs:
                        text = self._input_text(msg.value())
                        if text is not None:
                            texts.append(text)
                        continue
                    try:
                        record = decode(PredictionRecord, msg.value())
                    except SchemaError as err:
                        log.warning("not a prediction record; skipped", error=str(err), topic=msg.topic())
                        continue
                    self.records += 1
                    if record.model_id != model_id or not record.evidence:
                        continue
                    evidence += evidence_of_record(record)
                    at = record.scored_at
                promoted = learner.observe_texts(texts, at=at) if texts else []
                promoted += learner.observe(evidence, at=at)
                for trigger in promoted:
                    self._publish(trigger)
        finally:
            consumer.close()

    def _newest_threshold(self, model_id: str) -> ThresholdUpdate | None:
        """The newest threshold update the workers would apply (its learner bar is this learner's)."""
        from confluent_kafka import KafkaException

        assert self.thresholds_topic is not None
        try:
            update = latest_update(
                self.kafka,
                self.thresholds_topic,
                model_id,
                THRESHOLDS,
                idle_timeout=2.0,
                policy=self.channel.policy(),
            )
        except KafkaException:
            return None  # no thresholds topic: the rule's own bars
        if update is not None and update.learn_bar is not None:
            log.info(
                "learner bar from the thresholds topic", version=update.version, **learn_bar_values(update)
            )
        return update

    def _input_text(self, value: bytes | None) -> str | None:
        """The text a worker would score from an input message (None for what it dead-letters)."""
        try:
            return self.defender.clean(decode(InputMessage, value).text)
        except (SchemaError, InvalidTextError):
            return None
        finally:
            self.texts += 1

    def _publish(self, trigger: LearnedTrigger) -> None:
        assert self.learner is not None
        update = update_from_learned(self.defender.model_id, self.learner.learned, previous=self.current)
        update = self.channel.sign(update)
        publish_record(
            self.triggers_topic,
            update.model_id.encode(),
            encode(update),
            self.kafka.producer_config(),
            what="trigger update",
            admin_config=self.kafka.admin_config(),
        )
        self.current = update
        log.info(
            "trigger learned and published",
            trigger=trigger.text,
            target=trigger.target_label,
            evidence=trigger.evidence_text,
            insertion_rate=round(trigger.insertion_rate, 3),
            version=update.version,
        )
        if self.on_promotion is not None:
            self.on_promotion(trigger, update)
