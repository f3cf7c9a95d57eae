"""The learn service with an update key: it starts from the set a keyed worker applies (an unsigned one
on the topic is not it) and signs each update it publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from consumers.kafka.topic_reader import TopicRange, read_topic
from consumers.learn.service import TriggerLearnService
from consumers.pipeline.triggers import add_trigger
from consumers.pipeline.update_settings import UpdateChannelSettings
from consumers.worker.update_listener import TRIGGERS, latest_update
from schemas import SignatureCheck, encode, verify_update
from stream_guard.triggers.rule import LearnedTrigger

MODEL = "tiny@0123456789ab"
KEY = "learner-key-0123456789abcdef"


def _learned(text: str) -> LearnedTrigger:
    at = datetime.now(UTC) - timedelta(minutes=1)
    return LearnedTrigger(text, 1, 12, 12, 3, at - timedelta(hours=2), at, 1.0, 103, 0.0, at)


def test_the_learner_signs_and_ignores_unsigned_sets(kafka_settings, topic_factory):
    from confluent_kafka import Producer

    topic = topic_factory(partitions=1, prefix="triggers")
    forged = add_trigger(None, MODEL, "the", at=datetime.now(UTC) - timedelta(minutes=2))
    producer = Producer(kafka_settings.producer_config())
    producer.produce(topic, key=MODEL.encode(), value=encode(forged))
    assert producer.flush(10) == 0
    producer.close()

    channel = UpdateChannelSettings(update_key=KEY)
    defender: Any = SimpleNamespace(model_id=MODEL)
    service = TriggerLearnService(
        kafka_settings, defender, ["a clean text"], topics=[], triggers_topic=topic, update_channel=channel
    )
    service.current = latest_update(kafka_settings, topic, MODEL, TRIGGERS, policy=channel.policy())
    assert service.current is None  # what the service's run() starts from: not the unsigned set
    service.learner = SimpleNamespace(learned=[_learned("cf")])  # type: ignore[assignment]
    service._publish(_learned("cf"))
    values = [e.value for e in read_topic(kafka_settings, TopicRange(topic=topic, idle_timeout=5.0))]
    assert verify_update(values[-1], KEY.encode()) is SignatureCheck.VALID
    live = latest_update(kafka_settings, topic, MODEL, TRIGGERS, policy=channel.policy())
    assert live is not None and live.texts() == ["cf"] and live == service.current
