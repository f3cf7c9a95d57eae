"""Kafka-free parts of the worker: validation → dead letters, threshold selection, settings, checkpoint
order, scoring failures (fakes stand in for confluent-kafka's clients and the Defender)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from consumers.pipeline.admit import Accepted, validate_message
from consumers.worker.checkpoint import Checkpoint, DeliveryError
from consumers.worker.settings import WorkerSettings
from consumers.worker.update_listener import THRESHOLDS, UpdateSelector
from schemas import CalibrationSummary, DeadLetterRecord, SourceRef, ThresholdUpdate, encode
from stream_guard.errors import InvalidTextError
from stream_guard.textcheck import clean_text

SOURCE = SourceRef(topic="in", partition=0, offset=7, key="k")


def _clean(text: object) -> str:
    return clean_text(text, max_chars=50)


def _validate(value: bytes | None):
    return validate_message(value, b"k", SOURCE, clean=_clean, max_bytes=200)


# -- validation → dead-letter mapping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error_type", "recovered_id"),
    [
        (None, "not_json", None),
        (b"", "not_json", None),
        (b"{oops", "not_json", None),
        (b"\xff\xfe{", "invalid_utf8", None),
        (b"[1, 2]", "not_object", None),
        (b'{"text": "hello"}', "validation", None),
        (b'{"id": "a1"}', "validation", "a1"),
        (b'{"id": "a2", "text": 5}', "validation", "a2"),
        (b'{"id": "a3", "text": "   "}', "empty_text", "a3"),
        (b'{"id": "a4", "text": "' + b"x" * 300 + b'"}', "oversize", "a4"),  # over max_bytes
        (b'{"id": "a5", "text": "' + b"x" * 60 + b'"}', "oversize", "a5"),  # over the defender's chars
        (b'{"id": "a6", "text": "\\u0001\\u0002"}', "empty_text", "a6"),  # only control characters
    ],
)
def test_malformed_input_becomes_a_dead_letter(value, error_type, recovered_id):
    result = _validate(value)
    assert isinstance(result, DeadLetterRecord)
    assert result.error_type == error_type and result.reason
    assert result.id == recovered_id
    assert result.source == SOURCE
    assert result.original_value() == value
    assert base64.b64decode(result.original_key_b64) == b"k"


def test_valid_input_is_accepted_with_cleaned_text():
    result = _validate(orjson.dumps({"id": 12, "text": "hi\x01there", "metadata": {"a": 1}}))
    assert isinstance(result, Accepted)
    assert result.message.id == "12" and result.message.metadata == {"a": 1}
    assert result.text == "hi there"


# -- threshold selection -------------------------------------------------------------------------------


def _update(version: str, minutes: float, value: float = 1.0, model_id: str = "m@1") -> bytes:
    return encode(
        ThresholdUpdate(
            model_id=model_id,
            version=version,
            value=value,
            percentile=95.0,
            calibration=CalibrationSummary(dataset="d", n_texts=3, score_mean=0.0, score_std=1.0),
            created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
        )
    )


def test_newest_update_for_this_model_wins():
    selector = UpdateSelector(THRESHOLDS, "m@1")
    threshold, update = selector.offer(_update("b", 10, value=2.5))
    assert threshold.value == 2.5 and threshold.version == "b" and update.version == "b"
    assert selector.offer(_update("a", 5)) is None  # older
    assert selector.offer(_update("b", 10)) is None  # the same again
    assert selector.offer(_update("c", 10, value=3.0))[0].version == "c"  # same time: version breaks the tie
    assert selector.offer(_update("z", 20, model_id="other@2")) is None  # another model
    assert selector.offer(b"not json") is None
    assert selector.offer(b'{"model_id": "m@1", "version": "x"}') is None  # incomplete
    assert selector.best.version == "c"


def test_update_with_length_buckets_maps_to_a_bucketed_threshold():
    raw = orjson.loads(_update("v", 1))
    raw["by_length"] = [{"max_tokens": 16, "value": 0.5}, {"max_tokens": 64, "value": 0.8}]
    threshold, _ = UpdateSelector(THRESHOLDS, "m@1").offer(orjson.dumps(raw))
    assert (
        threshold.for_length(10) == 0.5
        and threshold.for_length(40) == 0.8
        and threshold.for_length(99) == 1.0
    )


# -- settings -----------------------------------------------------------------------------------------


def test_settings_read_the_compose_env_names(monkeypatch):
    monkeypatch.setenv("STREAM_GUARD_INPUT_TOPICS", "texts, more-texts")
    monkeypatch.setenv("STREAM_GUARD_PREDICTIONS_TOPIC", "preds")
    monkeypatch.setenv("STREAM_GUARD_AUDIT_TOPIC", "aud")
    monkeypatch.setenv("STREAM_GUARD_DEAD_LETTER_TOPIC", "dlq")
    monkeypatch.setenv("STREAM_GUARD_THRESHOLDS_TOPIC", "")
    monkeypatch.setenv("STREAM_GUARD_THRESHOLD", "3.5")
    monkeypatch.setenv("STREAM_GUARD_CONSUMER_OVERRIDES", '{"session.timeout.ms": 2000}')
    monkeypatch.setenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("STREAM_GUARD_MODEL", "/models/current")
    settings = WorkerSettings()
    assert settings.input_topics == ["texts", "more-texts"]
    assert settings.output_topics == ["preds", "aud", "dlq"]
    assert settings.thresholds_topic is None and settings.threshold == 3.5
    assert settings.consumer_overrides == {"session.timeout.ms": 2000}
    assert settings.kafka.bootstrap_servers == "kafka:9092" and settings.defender.model == "/models/current"
    monkeypatch.setenv("STREAM_GUARD_INPUT_TOPICS", '["a", "b"]')
    assert WorkerSettings().input_topics == ["a", "b"]


@pytest.mark.parametrize("topics", ["bad topic", "a,a", ""])
def test_settings_reject_bad_input_topics(topics):
    with pytest.raises(ValueError):
        WorkerSettings(input_topics=topics)


# -- checkpoint order ----------------------------------------------------------------------------------


class FakeProducer:
    def __init__(self, log: list, fail: str | None = None, stuck: int = 0) -> None:
        self.log, self.fail, self.stuck, self.pending = log, fail, stuck, []

    def produce(self, topic, value, key, on_delivery):
        self.log.append(("produce", topic))
        self.pending.append((topic, on_delivery))

    def flush(self, timeout):
        self.log.append(("flush",))
        for topic, callback in self.pending:
            callback(self.fail if topic == "bad" else None, None)
        self.pending = []
        return self.stuck


class FakeConsumer:
    def __init__(self, log: list) -> None:
        self.log = log

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        self.log.append(("commit", [(tp.topic, tp.partition, tp.offset) for tp in offsets]))


def test_checkpoint_produces_then_flushes_then_commits():
    log: list = []
    delivered: list = []
    checkpoint = Checkpoint(
        FakeProducer(log), FakeConsumer(log), on_delivered=lambda t, ts: delivered.append((t, ts))
    )
    checkpoint.produce("out", b"1", b"k", input_ts=5.0)
    checkpoint.mark_processed("in", 0, 10)
    checkpoint.mark_processed("in", 0, 11)
    checkpoint.mark_processed("in", 1, 3)
    assert checkpoint.commit()
    assert log == [("produce", "out"), ("flush",), ("commit", [("in", 0, 12), ("in", 1, 4)])]
    assert delivered == [("out", 5.0)] and checkpoint.pending == {}


@pytest.mark.parametrize(("fail", "stuck"), [("broker said no", 0), (None, 2)])
def test_checkpoint_never_commits_after_a_failed_or_missing_delivery(fail, stuck):
    log: list = []
    checkpoint = Checkpoint(FakeProducer(log, fail=fail, stuck=stuck), FakeConsumer(log))
    checkpoint.produce("bad", b"1", None)
    checkpoint.mark_processed("in", 0, 1)
    with pytest.raises(DeliveryError):
        checkpoint.commit()
    assert not any(entry[0] == "commit" for entry in log)
    assert checkpoint.pending == {("in", 0): 2}


def test_checkpoint_forgets_lost_partitions():
    log: list = []
    checkpoint = Checkpoint(FakeProducer(log), FakeConsumer(log))
    checkpoint.mark_processed("in", 0, 1)
    checkpoint.mark_processed("in", 1, 1)
    checkpoint.forget([("in", 0)])
    checkpoint.commit()
    assert log[-1] == ("commit", [("in", 1, 2)])


def test_invalid_text_error_kinds_are_error_types():
    with pytest.raises(InvalidTextError) as info:
        _clean("x" * 51)
    assert info.value.kind == "oversize"
