"""`stream-guard triggers` with an update key: what it publishes is signed, and it builds only on a set
signed with the key (as the workers apply only those); a bad key setting is one line, exit 2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.cli.app import app
from consumers.kafka.topic_reader import TopicRange, read_topic
from consumers.pipeline.triggers import add_trigger
from schemas import SignatureCheck, TriggerUpdate, encode, verify_update

MODEL = "tiny@0123456789ab"
KEY = "triggers-key-0123456789abcdef"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_a_keyed_operator_signs_and_ignores_unsigned_sets(kafka_settings, topic_factory, monkeypatch):
    from confluent_kafka import Producer

    topic = topic_factory(partitions=1, prefix="triggers")
    on = ["-b", kafka_settings.bootstrap_servers, "--topic", topic, "--model-id", MODEL]
    # someone without the key put a set on the topic
    forged = add_trigger(None, MODEL, "the", at=datetime.now(UTC) - timedelta(minutes=1))
    producer = Producer(kafka_settings.producer_config())
    producer.produce(topic, key=MODEL.encode(), value=encode(forged))
    assert producer.flush(10) == 0
    producer.close()

    monkeypatch.setenv("STREAM_GUARD_UPDATE_KEY", KEY)
    listed = invoke("triggers", "list", "--json", *on)
    assert listed.exit_code == 0 and listed.stdout.strip() == "null"  # the forged set is not the live one
    added = invoke("triggers", "add", "cf", *on)
    assert added.exit_code == 0, added.output
    values = [e.value for e in read_topic(kafka_settings, TopicRange(topic=topic, idle_timeout=5.0))]
    assert len(values) == 2 and verify_update(values[-1], KEY.encode()) is SignatureCheck.VALID
    live = TriggerUpdate.model_validate(orjson.loads(invoke("triggers", "list", "--json", *on).stdout))
    assert live.texts() == ["cf"] and live.signature is not None  # not built on the forged "the"


def test_a_bad_key_setting_is_one_line(kafka_settings, topic_factory, monkeypatch: pytest.MonkeyPatch):
    topic = topic_factory(partitions=1, prefix="triggers")
    monkeypatch.setenv("STREAM_GUARD_UPDATE_KEY", "too-short")
    result = invoke(
        "triggers", "add", "cf", "-b", kafka_settings.bootstrap_servers, "--topic", topic, "--model-id", MODEL
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "at least 16 bytes" in lines[0] and "too-short" not in lines[0]
