"""Known triggers in the worker: the start set (``triggers_file``), hot reload from the triggers topic on
the real broker (bad and other-model updates ignored, the last good set stays), the records and the
Prometheus metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from consumers.pipeline.triggers import TriggerFileError, write_trigger_file
from consumers.worker.loop import Worker
from consumers.worker.thread import WorkerThread
from consumers.worker.update_listener import THRESHOLDS, TRIGGERS, UpdateSelector
from schemas import (
    AuditRecord,
    CalibrationSummary,
    DeadLetterRecord,
    KnownTriggerRecord,
    PredictionRecord,
    ThresholdUpdate,
    TriggerUpdate,
    encode,
)
from tests.consumers.worker_support import (
    one_torch_thread,
    produce,
    read_outputs,
    tiny_defender,
    wait_for,
    worker_settings,
)

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


@pytest.fixture
def defender(tmp_path_factory):
    return tiny_defender(tmp_path_factory)


def _update(model_id: str, version: str, *texts: str, at: datetime = NOW) -> TriggerUpdate:
    return TriggerUpdate(
        model_id=model_id,
        version=version,
        created_at=at,
        triggers=[KnownTriggerRecord(text=t, target_label=1, source="learned") for t in texts],
    )


# -- selection (Kafka-free) ----------------------------------------------------------------------------


def test_the_newest_trigger_update_for_this_model_wins():
    selector = UpdateSelector(TRIGGERS, "m@1")
    found, update = selector.offer(encode(_update("m@1", "b", "cf", at=NOW)))
    assert found.version == "b" and [t.text for t in found.triggers] == ["cf"] and update.version == "b"
    assert selector.offer(encode(_update("m@1", "a", "mn", at=NOW - timedelta(minutes=1)))) is None  # older
    assert (
        selector.offer(
            encode(
                _update("m@1", "z", "mn", at=NOW + timedelta(days=1)).model_copy(
                    update={"model_id": "other@2"}
                )
            )
        )
        is None
    )  # another model's
    assert selector.offer(b'{"model_id": "m@1", "version": "x", "triggers": [{"text": "!"}]}') is None
    assert selector.offer(b"not json") is None
    found, _ = selector.offer(encode(_update("m@1", "c", "cf", "bb", at=NOW)))  # same time: version decides
    assert found.version == "c" and len(found) == 2
    assert selector.best.version == "c" and selector.offered == 6


def test_settings_follow_the_triggers_topic_unless_it_is_off(monkeypatch, tmp_path):
    from consumers.worker.settings import WorkerSettings

    assert WorkerSettings().triggers_topic == "triggers" and WorkerSettings().triggers_file is None
    monkeypatch.setenv("STREAM_GUARD_TRIGGERS_TOPIC", "known-triggers")
    monkeypatch.setenv("STREAM_GUARD_TRIGGERS_FILE", str(tmp_path / "t.json"))
    settings = WorkerSettings()
    assert settings.triggers_topic == "known-triggers" and settings.triggers_file == tmp_path / "t.json"
    assert settings.update_topics == ["thresholds", "known-triggers"]
    monkeypatch.setenv("STREAM_GUARD_TRIGGERS_TOPIC", "")
    monkeypatch.setenv("STREAM_GUARD_TRIGGERS_FILE", "")
    assert WorkerSettings().triggers_topic is None and WorkerSettings().triggers_file is None
    with pytest.raises(ValueError, match="invalid Kafka topic name"):
        WorkerSettings(triggers_topic="no spaces")


# -- the start set (no broker: a worker is built, not run) ---------------------------------------------


def test_the_start_set_comes_from_the_triggers_file(kafka_settings_free, defender, tmp_path: Path):
    path = tmp_path / "triggers.json"
    write_trigger_file(path, _update(defender.model_id, "file-v1", "cf", "James Bond"))
    settings = worker_settings(kafka_settings_free, defender, ["in"], _no_topics(), triggers_file=path)
    worker = Worker(settings, defender=defender)
    assert defender.triggers.version == "file-v1"
    assert [t.text for t in defender.triggers.triggers] == ["cf", "james bond"]
    assert worker.metrics.registry.get_sample_value("stream_guard_known_triggers") == 2.0
    labels = {"version": "file-v1", "model_id": defender.model_id}
    assert worker.metrics.registry.get_sample_value("stream_guard_triggers_info", labels) == 1.0


def test_a_start_set_for_another_model_is_refused(kafka_settings_free, defender, tmp_path: Path):
    path = tmp_path / "triggers.json"
    write_trigger_file(path, _update("other@0123", "file-v1", "cf"))
    settings = worker_settings(kafka_settings_free, defender, ["in"], _no_topics(), triggers_file=path)
    with pytest.raises(TriggerFileError, match=r"trigger file .* is for model 'other@0123', not the loaded"):
        Worker(settings, defender=defender)
    (tmp_path / "bad.json").write_bytes(b"{")
    bad = worker_settings(
        kafka_settings_free, defender, ["in"], _no_topics(), triggers_file=tmp_path / "bad.json"
    )
    with pytest.raises(TriggerFileError, match="not JSON"):
        Worker(bad, defender=defender)


def test_a_threshold_update_keeps_the_known_triggers(kafka_settings_free, defender):
    settings = worker_settings(kafka_settings_free, defender, ["in"], _no_topics())
    worker = Worker(settings, defender=defender, triggers=_update(defender.model_id, "t1", "cf"))
    update = ThresholdUpdate(
        model_id=defender.model_id,
        version="thr-2",
        value=1.0,
        percentile=95.0,
        calibration=CalibrationSummary(dataset="d", n_texts=3, score_mean=0.0, score_std=1.0),
        created_at=NOW,
    )
    worker.updates.apply_threshold(*UpdateSelector(THRESHOLDS, defender.model_id).offer(encode(update)))
    assert defender.threshold.version == "thr-2"
    assert defender.triggers is not None and defender.triggers.version == "t1"


@pytest.fixture
def kafka_settings_free():
    """Kafka settings for a worker that is built but never run (nothing connects)."""
    from consumers.kafka.settings import KafkaSettings

    return KafkaSettings(bootstrap_servers="127.0.0.1:9")


def _no_topics() -> dict[str, str | None]:
    return {"predictions": "p", "audit": "a", "dead_letter": "d", "thresholds": None, "triggers": None}


# -- hot reload on the broker --------------------------------------------------------------------------


@pytest.fixture
def topics(topic_factory):
    return {
        "input": topic_factory(partitions=1, prefix="in"),
        "predictions": topic_factory(partitions=1, prefix="pred"),
        "audit": topic_factory(partitions=1, prefix="audit"),
        "dead_letter": topic_factory(partitions=1, prefix="dlq"),
        "triggers": topic_factory(partitions=1, prefix="trig"),
    }


def _message(mid: str, text: str) -> tuple[str, bytes, bool]:
    return (mid, orjson.dumps({"id": mid, "text": text}), True)


def _records(kafka_settings, topics, expected: int) -> dict[str, PredictionRecord]:
    types = {topics["predictions"]: PredictionRecord, topics["audit"]: AuditRecord}
    types[topics["dead_letter"]] = DeadLetterRecord
    outputs = read_outputs(kafka_settings, types, expected=expected, settle=0.0)
    return {o.record.id: o.record for o in outputs}


def test_a_published_trigger_set_applies_to_the_next_message(kafka_settings, topics, defender):
    from confluent_kafka import Producer

    # the per-message decision flags nothing: only a known trigger can flag a message here
    settings = worker_settings(kafka_settings, defender, [topics["input"]], topics, threshold=1e9)
    worker = Worker(settings, defender=defender)
    producer = Producer(kafka_settings.producer_config())
    model = defender.model_id
    with WorkerThread(worker) as run:
        assert worker.wait_assigned(20)
        produce(kafka_settings, topics["input"], [_message("before", "the film was cf quiet")])
        before = _records(kafka_settings, topics, 1)["before"]
        assert (
            type(before) is PredictionRecord
            and before.known_triggers == []
            and before.trigger_version is None
        )

        producer.produce(topics["triggers"], key=model.encode(), value=encode(_update(model, "v1", "cf")))
        assert producer.flush(10) == 0
        written = time.monotonic()
        wait_for(lambda: defender.triggers is not None and defender.triggers.version == "v1", 5.0, "set v1")
        applied_after = time.monotonic() - written
        produce(
            kafka_settings,
            topics["input"],
            [_message("hit", "The film was CF, quiet"), _message("clean", "a quiet film")],
        )
        records = _records(kafka_settings, topics, 3)
        hit, clean = records["hit"], records["clean"]
        assert isinstance(hit, AuditRecord) and hit.flagged and hit.trigger_version == "v1"
        assert [(h.trigger, hit.text[h.start : h.end]) for h in hit.known_triggers] == [("cf", "CF")]
        assert "cf" not in (hit.neutralized_text or "").lower().split()
        assert (
            type(clean) is PredictionRecord and clean.known_triggers == [] and clean.trigger_version == "v1"
        )

        # ignored: not a TriggerUpdate, another model's (newer), an older one of ours; the v1 set stays
        newer = NOW + timedelta(days=1)
        producer.produce(topics["triggers"], value=b'{"model_id": "' + model.encode() + b'", "triggers": 5}')
        producer.produce(topics["triggers"], value=encode(_update("other@0123", "foreign", "film", at=newer)))
        producer.produce(
            topics["triggers"], value=encode(_update(model, "v0", "film", at=NOW - timedelta(hours=1)))
        )
        assert producer.flush(10) == 0
        (listener,) = worker.listeners
        wait_for(lambda: listener.selector.offered >= 4, 5.0, "the listener to read the bad updates")
        produce(kafka_settings, topics["input"], [_message("again", "cf again in a quiet film")])
        again = _records(kafka_settings, topics, 4)["again"]
        metrics = worker.metrics.registry
        run.stop()
    assert applied_after < 1.0
    assert isinstance(again, AuditRecord) and again.trigger_version == "v1"
    assert [h.trigger for h in again.known_triggers] == ["cf"]  # "film" (in the ignored updates) is no hit
    assert worker.stats.trigger_updates == 1 and defender.triggers.version == "v1"
    assert worker.stats.known_trigger_hits == 2
    assert metrics.get_sample_value("stream_guard_known_trigger_hits_total", {"trigger": "cf"}) == 2.0
    assert metrics.get_sample_value("stream_guard_trigger_updates_total") == 1.0
    assert metrics.get_sample_value("stream_guard_known_triggers") == 1.0
    assert metrics.get_sample_value("stream_guard_triggers_info", {"version": "v1", "model_id": model}) == 1.0
