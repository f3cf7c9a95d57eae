"""``run --learn-triggers`` on the real broker: the worker learns the trigger from its own traffic, in
force from the message that made it recur (as a replay of the same traffic), publishes the set to the
triggers topic, and takes in a set another writer published without losing what it learned."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from consumers.pipeline.envelope import Envelope
from consumers.pipeline.triggers import add_trigger
from consumers.replay.learn import learning_replay
from consumers.replay.run import replay_pipeline
from consumers.worker.loop import Worker
from consumers.worker.thread import WorkerThread
from consumers.worker.update_listener import TRIGGERS, latest_update
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord, encode
from stream_guard.datasets import load_dataset
from tests.consumers.replay.replay_fixtures import (
    TRIGGER,
    Backdoor,
    make_backdoor,
    restore_logging,  # noqa: F401  (autouse)
    traffic,
)
from tests.consumers.worker_support import one_torch_thread, produce, read_outputs, wait_for, worker_settings
from tests.stream_guard.backdoor_model import TARGET_LABEL


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def backdoor(tmp_path_factory: pytest.TempPathFactory) -> Backdoor:
    return make_backdoor(tmp_path_factory.mktemp("worker-learning"))


@pytest.fixture
def topics(topic_factory):
    names = ("input", "predictions", "audit", "dead_letter", "triggers")
    return {name: topic_factory(partitions=1, prefix=name[:5]) for name in names}


@pytest.fixture(scope="module")
def clean_file(tmp_path_factory: pytest.TempPathFactory):
    movies = load_dataset("movies")
    path = tmp_path_factory.mktemp("clean") / "calibration.txt"
    path.write_text("".join(movies.texts[i] + "\n" for i in range(0, 6000, 50)))  # apart from the traffic
    return path


def _types(topics: dict[str, str]) -> dict[str, type]:
    return {
        topics["predictions"]: PredictionRecord,
        topics["audit"]: AuditRecord,
        topics["dead_letter"]: DeadLetterRecord,
    }


def _learning_worker(kafka_settings, topics, backdoor, clean_file) -> tuple[Worker, object]:
    defender = backdoor.defender(probe_rate=0.0)  # no flag (threshold 1e6), no probe: recurrence only
    settings = worker_settings(
        kafka_settings,
        defender,
        [topics["input"]],
        topics,
        threshold=1e6,
        learn_triggers=True,
        clean_texts=str(clean_file),
    )
    return Worker(settings, defender=defender), defender


def test_the_worker_learns_the_trigger_from_its_own_traffic_as_a_replay_does(
    kafka_settings, topics, backdoor, clean_file
) -> None:
    stream = traffic(n_clean=60, every=3)  # 80 messages, 20 with the trigger
    worker, _ = _learning_worker(kafka_settings, topics, backdoor, clean_file)
    with WorkerThread(worker) as run:
        assert worker.wait_assigned(30)
        produce(kafka_settings, topics["input"], [(m["id"], orjson.dumps(m), True) for m in stream])
        outputs = read_outputs(kafka_settings, _types(topics), expected=len(stream), settle=0.0)
        wait_for(lambda: worker.learning.publisher.published >= 1, 30.0, "the set to be published")
        run.stop()
    records = {o.record.id: o.record for o in outputs}
    published = latest_update(kafka_settings, topics["triggers"], worker.defender.model_id, TRIGGERS)
    assert published is not None and [t.text for t in published.triggers] == [TRIGGER]
    (record,) = published.triggers
    assert record.source == "learned" and record.nominated_by == "recurrence"
    assert record.target_label == TARGET_LABEL

    ordered = [records[m["id"]] for m in stream]
    first = next(k for k, r in enumerate(ordered) if r.trigger_version == published.version)
    assert all(r.trigger_version is None for r in ordered[:first])
    triggered_after = [records[m["id"]] for m in stream[first:] if TRIGGER in str(m["text"]).split()]
    assert triggered_after and all(
        [h.trigger for h in r.known_triggers] == [TRIGGER] and r.final_label != TARGET_LABEL
        for r in triggered_after
    )
    # the same traffic replayed with --learn-triggers: the trigger is in force from the same message
    defender = backdoor.defender(probe_rate=0.0, threshold=1e6)
    movies = load_dataset("movies")
    replay = learning_replay(replay_pipeline(defender), [movies.texts[i] for i in range(0, 6000, 50)])
    replayed = list(replay.run((Envelope(orjson.dumps(m)) for m in stream), batch_size=16))
    replay_first = next(k for k, o in enumerate(replayed) if o.verdict.trigger_version is not None)
    assert replay_first == first


def test_a_set_published_by_another_writer_is_taken_in_and_the_learned_trigger_kept(
    kafka_settings, topics, backdoor, clean_file
) -> None:
    """An operator adds a word after the worker learned its trigger, from a set that does not hold the
    learned one (as if two writers raced): the worker judges with both and publishes the merged set."""
    stream = traffic(n_clean=60, every=3)
    worker, defender = _learning_worker(kafka_settings, topics, backdoor, clean_file)
    with WorkerThread(worker) as run:
        assert worker.wait_assigned(30)
        produce(kafka_settings, topics["input"], [(m["id"], orjson.dumps(m), True) for m in stream])
        read_outputs(kafka_settings, _types(topics), expected=len(stream), settle=0.0)
        wait_for(lambda: worker.learning.publisher.published >= 1, 30.0, "the learned set")
        learned = worker.learning.current
        # newer than the learned set, and without its trigger
        racing = add_trigger(None, defender.model_id, "zzyzx", at=learned.created_at + timedelta(seconds=1))
        produce(kafka_settings, topics["triggers"], [(defender.model_id, encode(racing), True)])
        wait_for(lambda: worker.learning.received == racing.version, 30.0, "the racing set to arrive")
        later = {"id": "later", "text": f"a quiet {TRIGGER} film about nothing much zzyzx"}
        produce(kafka_settings, topics["input"], [("later", orjson.dumps(later), True)])
        outputs = read_outputs(kafka_settings, _types(topics), expected=len(stream) + 1, settle=0.0)
        wait_for(lambda: worker.learning.publisher.published >= 2, 30.0, "the merged set")
        run.stop()
    assert worker.learning.last_followed == racing.version
    hit = next(o.record for o in outputs if o.record.id == "later")
    assert sorted(h.trigger for h in hit.known_triggers) == [TRIGGER, "zzyzx"]
    merged = latest_update(kafka_settings, topics["triggers"], defender.model_id, TRIGGERS)
    assert merged is not None and sorted(merged.texts()) == [TRIGGER, "zzyzx"]
    assert hit.trigger_version == merged.version


def test_a_threshold_updates_measured_bar_reaches_the_learner_before_the_next_batch(monkeypatch) -> None:
    """``calibrate --scan-bar`` publishes the learner's bar with the threshold; the worker's thresholds
    listener hands the update over (its thread), the judge step takes it in (the torch thread)."""
    from types import SimpleNamespace

    import numpy as np

    from consumers.worker.learning import WorkerLearning
    from consumers.worker.updates import DefenderUpdates
    from schemas import CalibrationSummary, LearnBar, ThresholdUpdate
    from stream_guard.triggers.insertion import InsertionTest
    from stream_guard.triggers.learner import TriggerLearner
    from stream_guard.triggers.rule import LearnRule

    for name in ("MIN_INSERTION_RATE", "MIN_INSERTION_RATE_UNSEEN"):
        monkeypatch.delenv(f"STREAM_GUARD_LEARN_{name}", raising=False)
    test = InsertionTest(["a good film", "a bad film"], lambda texts: np.full((len(texts), 2), 0.5))
    learner = TriggerLearner.for_texts(test, LearnRule())
    pipeline = SimpleNamespace(defender=SimpleNamespace(model_id="m"))
    learning = WorkerLearning(pipeline, learner, settings=SimpleNamespace())  # type: ignore[arg-type]
    bar = LearnBar(min_insertion_rate_unseen=0.7, ceiling=0.5, strongest=None, words=12, margin=0.1)
    summary = CalibrationSummary(dataset="d", n_texts=10, score_mean=0.1, score_std=0.01)
    update = ThresholdUpdate(model_id="m", version="v1", value=0.3, percentile=99.0, calibration=summary,
                             learn_bar=bar, created_at="2026-01-01T00:00:00Z")  # type: ignore[arg-type]  # fmt: skip
    updates = SimpleNamespace(
        on_threshold=learning.follow_threshold, defender=SimpleNamespace(set_threshold=id)
    )
    updates.stats, updates.metrics = (
        SimpleNamespace(threshold_updates=0),
        SimpleNamespace(threshold_updates=SimpleNamespace(inc=lambda: None)),
    )
    updates._update_threshold_metrics = lambda created_at=None: None
    DefenderUpdates.apply_threshold(updates, object(), update)  # type: ignore[arg-type]  # the listener's call
    assert learner.rule == LearnRule()  # not while a batch may be under way
    learning.judge_batch([])
    assert learner.rule.min_insertion_rate_unseen == 0.7
    assert learner.rule.min_insertion_rate == LearnRule().min_insertion_rate
    learning.follow_threshold(update.model_copy(update={"learn_bar": None}))  # a plain recalibration
    learning.judge_batch([])
    assert learner.rule == LearnRule()
