"""The learn service beside a live worker on the real broker: the worker's records carry evidence, the
service learns the trigger from them and publishes it, the worker picks it up, and the next triggered
message comes out neutralized with the known-trigger marker."""

from __future__ import annotations

import threading

import orjson
import pytest

from consumers.learn.service import TriggerLearnService, evidence_of_record
from consumers.worker.loop import Worker
from consumers.worker.thread import WorkerThread
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord
from stream_guard.datasets import load_dataset
from tests.consumers.replay.replay_fixtures import (
    TRIGGER,
    make_backdoor,
    restore_logging,  # noqa: F401  (autouse)
    traffic,
)
from tests.consumers.worker_support import one_torch_thread, produce, read_outputs, wait_for, worker_settings
from tests.stream_guard.backdoor_model import TARGET_LABEL


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


@pytest.fixture
def topics(topic_factory):
    names = ("input", "predictions", "audit", "dead_letter", "triggers")
    return {name: topic_factory(partitions=1, prefix=name[:5]) for name in names}


def _learn_live(
    kafka_settings, topics, backdoor, *, probe_rate: float, threshold: float, input_topics: list[str]
) -> tuple[list, dict]:
    """A worker and the learn service on the broker, 80 messages (20 with the trigger), then one more
    triggered message once the worker holds the learned set: what was learned, and every record by id."""
    defender = backdoor.defender(probe_rate=probe_rate)
    settings = worker_settings(kafka_settings, defender, [topics["input"]], topics, threshold=threshold)
    worker = Worker(settings, defender=defender)
    movies = load_dataset("movies")
    learned = []
    service = TriggerLearnService(
        kafka_settings,
        backdoor.defender(),
        [movies.texts[i] for i in range(0, 6000, 50)],  # the calibration texts
        topics=[topics["predictions"], topics["audit"]],
        input_topics=input_topics,
        triggers_topic=topics["triggers"],
        on_promotion=lambda trigger, update: learned.append((trigger, update)),
    )
    learning = threading.Thread(target=service.run, daemon=True)
    types = {topics["predictions"]: PredictionRecord, topics["audit"]: AuditRecord}
    types[topics["dead_letter"]] = DeadLetterRecord
    with WorkerThread(worker) as run:
        assert worker.wait_assigned(30)
        learning.start()
        stream = traffic(n_clean=60, every=3)  # 80 messages, 20 with the trigger
        produce(kafka_settings, topics["input"], [(m["id"], orjson.dumps(m), True) for m in stream])
        wait_for(lambda: bool(learned), 120.0, "the service to learn the trigger")
        version = learned[0][1].version
        wait_for(lambda: defender.triggers is not None and defender.triggers.version == version, 10.0, "set")
        later = {"id": "later", "text": f"a quiet {TRIGGER} film about nothing much"}
        produce(kafka_settings, topics["input"], [("later", orjson.dumps(later), True)])
        outputs = read_outputs(kafka_settings, types, expected=len(stream) + 1, settle=0.0)
        run.stop()
    service.stop()
    learning.join(10)
    return learned, {o.record.id: o.record for o in outputs}


def _assert_later_message_neutralized(records: dict, version: str) -> None:
    hit = records["later"]
    assert isinstance(hit, AuditRecord) and hit.trigger_version == version
    assert [h.trigger for h in hit.known_triggers] == [TRIGGER] and hit.final_label != TARGET_LABEL


def test_a_trigger_learned_from_the_live_stream_is_removed_from_the_next_message(
    kafka_settings, topics, tmp_path_factory
) -> None:
    """Evidence only (no input topic): flags and probes on the worker's records."""
    backdoor = make_backdoor(tmp_path_factory.mktemp("learn-service"))
    learned, records = _learn_live(
        kafka_settings, topics, backdoor, probe_rate=0.2, threshold=backdoor.threshold, input_topics=[]
    )
    ((trigger, update),) = learned
    assert trigger.text == TRIGGER and trigger.target_label == TARGET_LABEL and trigger.basis == "flips"
    assert [t.text for t in update.triggers] == [TRIGGER] and update.triggers[0].source == "learned"
    _assert_later_message_neutralized(records, update.version)
    evidence = [e for r in records.values() for e in evidence_of_record(r)]
    assert evidence and all(e.word == TRIGGER for e in evidence if e.label_before == TARGET_LABEL)


def test_a_trigger_no_message_was_flagged_for_is_learned_from_the_input_topics_recurrence(
    kafka_settings, topics, tmp_path_factory
) -> None:
    """No flag, no probe: the records carry no evidence; the service counts the input topic's texts, the
    trigger recurs, passes the insertion test and is published; the worker removes it from then on."""
    backdoor = make_backdoor(tmp_path_factory.mktemp("learn-recurrence"))
    learned, records = _learn_live(
        kafka_settings, topics, backdoor, probe_rate=0.0, threshold=1e6, input_topics=[topics["input"]]
    )
    ((trigger, update),) = learned
    assert (trigger.text, trigger.target_label, trigger.basis) == (TRIGGER, TARGET_LABEL, "recurrence")
    assert not any(r.evidence for r in records.values() if r.id != "later")
    _assert_later_message_neutralized(records, update.version)


def test_the_service_learns_with_the_bar_the_calibration_published(
    kafka_settings, topics, topic_factory, tmp_path_factory, monkeypatch
) -> None:
    """`calibrate --scan-bar --publish` puts the learner's bar on the thresholds topic with the threshold;
    the service reads the newest update for its model at start and learns with it."""
    from consumers.calibrate.job import publish_update
    from consumers.pipeline.update_settings import UpdateChannelSettings
    from schemas import CalibrationSummary, LearnBar, ThresholdUpdate
    from stream_guard.defender import Defender
    from stream_guard.loading import load_classifier
    from stream_guard.triggers.rule import LearnRule
    from tests.stream_guard.tiny_models import build_tiny_model

    for name in ("MIN_INSERTION_RATE", "MIN_INSERTION_RATE_UNSEEN"):
        monkeypatch.delenv(f"STREAM_GUARD_LEARN_{name}", raising=False)
    model_dir = build_tiny_model("bert", tmp_path_factory.mktemp("learn-bar"))
    defender = Defender(load_classifier(model_dir, device="cpu"))
    thresholds = topic_factory(partitions=1, prefix="thres")
    summary = CalibrationSummary(dataset="clean", n_texts=20, score_mean=0.1, score_std=0.1)
    bar = LearnBar(min_insertion_rate_unseen=0.7, ceiling=0.55, strongest="flimsy", words=30, margin=0.15)
    update = ThresholdUpdate(model_id=defender.model_id, version="v1", value=0.5, percentile=99.0,
                             calibration=summary, learn_bar=bar, created_at="2026-01-01T00:00:00Z")  # type: ignore[arg-type]  # fmt: skip
    publish_update(update, kafka_settings.producer_config(), thresholds, channel=UpdateChannelSettings())
    service = TriggerLearnService(
        kafka_settings,
        defender,
        ["a good film", "a bad film"],
        topics=[topics["predictions"]],
        triggers_topic=topics["triggers"],
        thresholds_topic=thresholds,
        update_channel=UpdateChannelSettings(),
    )
    learning = threading.Thread(target=service.run, daemon=True)
    learning.start()
    try:
        assert service.ready.wait(60)
    finally:
        service.stop()
        learning.join(10)
    assert service.learner is not None
    rule = service.learner.rule
    assert (rule.min_insertion_rate_unseen, rule.min_insertion_rate) == (0.7, LearnRule().min_insertion_rate)
