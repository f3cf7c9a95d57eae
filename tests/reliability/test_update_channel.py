"""The threshold and trigger channel under faults, on real brokers (issue 15, part 2).

* A listener started before its broker exists keeps retrying and applies the update published once the
  broker is up; its connection gauge follows the broker going away and coming back.
* A worker given the update key, fed malformed, future-dated (2100), out-of-range (−5, 1e308), unsigned
  and wrongly signed threshold and trigger updates, ignores every one (counted by reason), keeps the
  last good update, and still applies the next good one: nothing pins the ordering. Its /readyz says
  ready, its gauges say connected and how old the threshold in force is.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from consumers.devtools.broker import BrokerError, EmbeddedBroker, find_tansu_binary, free_port
from consumers.kafka.publish import publish_record
from consumers.kafka.settings import KafkaSettings
from consumers.kafka.topics import ensure_topics
from consumers.pipeline.update_policy import UpdatePolicy
from consumers.pipeline.update_settings import UpdateChannelSettings
from consumers.worker.loop import Worker
from consumers.worker.thread import WorkerThread
from consumers.worker.update_listener import THRESHOLDS, TRIGGERS, Backoff, UpdateListener, latest_update
from schemas import (
    CalibrationSummary,
    KnownTriggerRecord,
    ThresholdUpdate,
    TriggerUpdate,
    encode,
    sign_update,
)
from tests.consumers.worker_support import one_torch_thread, tiny_defender, wait_for, worker_settings

KEY = "reliability-update-key-0123456789"
WRONG_KEY = b"somebody-elses-key-0123456789"
SUMMARY = CalibrationSummary(
    dataset="clean",
    n_texts=500,
    score_mean=0.4,
    score_std=0.2,
    score_min=0.05,
    score_max=1.6,
    quantiles={"50": 0.35, "90": 0.65, "95": 0.8, "99": 1.1},
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    yield from one_torch_thread()


def _threshold(
    model_id: str, version: str, created_at: datetime, value: float = 0.8, percentile: float = 95.0
) -> ThresholdUpdate:
    return ThresholdUpdate(
        model_id=model_id,
        version=version,
        value=value,
        percentile=percentile,
        calibration=SUMMARY,
        created_at=created_at,
    )


def _triggers(model_id: str, version: str, created_at: datetime, *texts: str) -> TriggerUpdate:
    records = [KnownTriggerRecord(text=t) for t in texts]
    return TriggerUpdate(model_id=model_id, version=version, created_at=created_at, triggers=records)


def _publish(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    for value in values:
        publish_record(topic, b"key", value, kafka.producer_config(), timeout=10)


def _tansu() -> None:
    try:
        find_tansu_binary()
    except BrokerError as exc:
        pytest.skip(f"needs the embedded broker (Tansu): {exc}")


# -- a broker that comes up later ------------------------------------------------------------------


def test_a_listener_started_before_its_broker_applies_the_update_once_the_broker_is_up(kafka_settings):
    _tansu()
    port = free_port()
    kafka = kafka_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}"})
    applied: list[str] = []
    states: list[bool] = []
    listener = UpdateListener(
        kafka,
        "late-thresholds",
        "m@1",
        THRESHOLDS,
        lambda _threshold, update: applied.append(update.version),
        policy=UpdatePolicy(),
        on_connected=states.append,
        metadata_timeout_s=1.0,
        backoff=Backoff(initial=0.2, maximum=1.0),
    ).start()
    try:
        assert not listener.wait_caught_up(3.0)  # the first attempt failed: the worker would go on
        wait_for(lambda: listener.attempts >= 3, 15.0, "the listener to keep retrying")
        assert not listener.connected and listener.error is not None and states == []
        with EmbeddedBroker(port=port, cluster_id="late") as broker:
            ensure_topics({"bootstrap.servers": broker.bootstrap_servers}, {"late-thresholds": 1})
            now = datetime.now(UTC)
            _publish(kafka, "late-thresholds", [encode(_threshold("m@1", "v1", now))])
            wait_for(lambda: applied == ["v1"], 30.0, "the update published once the broker is up")
            assert listener.connected and listener.error is None and states == [True]
            # the broker goes away: the listener says so, and keeps its update
            broker.stop()
            # `connected` flips just before the callback runs (listener thread): wait for the callback
            wait_for(lambda: states == [True, False], 30.0, "the listener to notice the broker is gone")
            assert not listener.connected and applied == ["v1"]
        with EmbeddedBroker(port=port, cluster_id="late-again"):
            wait_for(lambda: states == [True, False, True], 30.0, "the listener to notice the broker is back")
            assert listener.connected
    finally:
        listener.stop()


# -- bad updates on a worker that holds the key ------------------------------------------------------


@pytest.fixture
def defender(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_defender(tmp_path_factory)


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _samples(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_a_keyed_worker_ignores_bad_threshold_and_trigger_updates_and_keeps_the_last_good(
    kafka_settings, topic_factory, defender
):
    topics = {
        "input": topic_factory(prefix="in"),
        "predictions": topic_factory(prefix="pred"),
        "audit": topic_factory(prefix="audit"),
        "dead_letter": topic_factory(prefix="dlq"),
        "thresholds": topic_factory(prefix="thr"),
        "triggers": topic_factory(prefix="trg"),
    }
    key = KEY.encode()
    mid = defender.model_id
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    far = datetime(2100, 1, 1, tzinfo=UTC)

    def signed(update: Any, k: bytes = key) -> bytes:
        return encode(sign_update(update, k))

    # already on the topics when the worker starts (a restart re-reads them): the good, then the bad
    tampered = orjson.loads(signed(_threshold(mid, "tampered", t0 + timedelta(minutes=2))))
    tampered["value"] = 1e308
    _publish(
        kafka_settings,
        topics["thresholds"],
        [
            signed(_threshold(mid, "good-1", t0)),
            b'{"model_id": "' + mid.encode() + b'", "value": NaN}',  # malformed
            signed(_threshold(mid, "pinned-2100", far)),
            signed(_threshold(mid, "minus-5", t0 + timedelta(minutes=1), value=-5.0)),
            signed(_threshold(mid, "huge", t0 + timedelta(minutes=1), value=1e308)),
            encode(_threshold(mid, "unsigned", t0 + timedelta(minutes=1), value=0.01)),
            signed(_threshold(mid, "wrong-key", t0 + timedelta(minutes=1)), WRONG_KEY),
            orjson.dumps(tampered),
        ],
    )
    _publish(
        kafka_settings,
        topics["triggers"],
        [
            signed(_triggers(mid, "set-1", t0, "cf")),
            encode(_triggers(mid, "unsigned", t0 + timedelta(minutes=1), "the")),
            signed(_triggers(mid, "wrong-key", t0 + timedelta(minutes=1), "the"), WRONG_KEY),
            signed(_triggers(mid, "pinned-2100", far, "the")),
            b"{not json",
        ],
    )
    port = free_port()
    settings = worker_settings(
        kafka_settings,
        defender,
        [topics["input"]],
        topics,
        metrics_port=port,
        metrics_host="127.0.0.1",
        update_channel=UpdateChannelSettings(update_key=KEY),
    )
    worker = Worker(settings, defender=defender)
    url = f"http://127.0.0.1:{port}"
    with WorkerThread(worker) as run:
        assert worker.wait_assigned(30)
        wait_for(lambda: _get(f"{url}/readyz")[0] == 200, 10.0, "/readyz")
        assert defender.threshold.version == "good-1" and defender.threshold.value == 0.8
        assert defender.triggers.version == "set-1"
        _, body = _get(f"{url}/readyz")
        assert body["checks"] == {"assigned": True, "model_loaded": True, "threshold_known": True}
        assert body["details"] == {"update_listeners_connected": {"threshold": True, "trigger": True}}
        assert _get(f"{url}/healthz")[0] == 200
        samples = _samples(url)

        # the next good updates still win over the one dated 2100
        now = datetime.now(UTC)
        _publish(kafka_settings, topics["thresholds"], [signed(_threshold(mid, "good-2", now, 0.79, 94.0))])
        _publish(kafka_settings, topics["triggers"], [signed(_triggers(mid, "set-2", now, "cf", "mn"))])
        wait_for(lambda: defender.threshold.version == "good-2", 5.0, "the next good threshold")
        wait_for(lambda: defender.triggers.version == "set-2", 5.0, "the next good trigger set")
        run.stop()

    rejected = "stream_guard_updates_rejected_total"
    for kind, reasons in {
        "threshold": {"invalid": 1, "future": 1, "out_of_range": 2, "unsigned": 1, "bad_signature": 2},
        "trigger": {"unsigned": 1, "bad_signature": 1, "future": 1, "invalid": 1},
    }.items():
        for reason, count in reasons.items():
            assert samples[f'{rejected}{{kind="{kind}",reason="{reason}"}}'] == count, (kind, reason)
    assert worker.stats.updates_rejected == 7 + 4 and worker.stats.threshold_updates == 2
    assert samples['stream_guard_update_listener_connected{kind="threshold"}'] == 1.0
    assert samples['stream_guard_update_listener_connected{kind="trigger"}'] == 1.0
    assert samples["stream_guard_threshold_age_seconds"] == pytest.approx(300, abs=60)
    assert samples["stream_guard_triggers_age_seconds"] == pytest.approx(300, abs=60)
    assert samples["stream_guard_model_loaded"] == 1.0

    # what an operator command (and a restarted worker) selects from the topic: the good ones
    policy = settings.update_channel.policy()
    assert (
        latest_update(kafka_settings, topics["thresholds"], mid, THRESHOLDS, policy=policy).version
        == "good-2"
    )
    assert latest_update(kafka_settings, topics["triggers"], mid, TRIGGERS, policy=policy).version == "set-2"


def test_a_worker_without_a_key_applies_unsigned_updates_as_before(kafka_settings, topic_factory):
    topic = topic_factory(prefix="thr")
    applied: list[str] = []
    listener = UpdateListener(
        kafka_settings,
        topic,
        "m@1",
        THRESHOLDS,
        lambda _t, u: applied.append(u.version),
        policy=UpdatePolicy(),
    ).start()
    try:
        now = datetime.now(UTC)
        _publish(
            kafka_settings,
            topic,
            [
                encode(_threshold("m@1", "unsigned", now - timedelta(seconds=2))),
                encode(sign_update(_threshold("m@1", "signed", now), WRONG_KEY)),  # not checked: no key
            ],
        )
        wait_for(lambda: applied == ["unsigned", "signed"], 10.0, "both updates")
    finally:
        listener.stop()
