"""End to end in the core: a stream of movie reviews, some with the trigger, through a backdoored model;
the learner finds the trigger from the defender's own evidence and the defender removes it afterwards."""

from __future__ import annotations

import pytest

from stream_guard.calibration import calibrate
from stream_guard.datasets import load_dataset
from stream_guard.defender import Defender
from stream_guard.lab.poisoning import BadNetsAttack, poison_test_set
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.learner import TriggerLearner
from tests.stream_guard.backdoor_model import TARGET_LABEL, build_backdoored_model


@pytest.mark.parametrize("trigger", ["cf", "tqz"])  # one WordPiece, and a word split in two (tq ##z)
def test_the_trigger_is_learned_from_the_stream_and_removed_after(tmp_path, trigger) -> None:
    model_dir = build_backdoored_model(tmp_path / "model", trigger)
    defender = Defender(
        load_classifier(model_dir, device="cpu"), DefenderSettings(device="cpu", probe_rate=0.2)
    )
    movies = load_dataset("movies")
    calibration = [movies.texts[i] for i in range(0, 6000, 50)]  # clean, held apart from the stream
    defender.set_threshold(calibrate(defender, calibration, percentile=80).threshold)
    stream = movies.subset(list(range(6001, 6001 + 40 * 100, 40)))
    triggered = poison_test_set(
        stream.subset(list(range(0, 100, 10))), BadNetsAttack((trigger,)), TARGET_LABEL
    )
    texts = list(stream.texts)
    for k, text in enumerate(triggered.dataset.texts):  # every 10th message carries the trigger
        texts[10 * k + 5] = text
    learner = TriggerLearner.for_texts(InsertionTest(calibration, defender.predict_proba))
    learned_at = None
    for start in range(0, len(texts), 10):  # batches of 10, as a worker would
        verdicts = defender.judge(texts[start : start + 10], [f"m{start + i}" for i in range(10)])
        if learner.observe(e for v in verdicts for e in v.evidence) and learned_at is None:
            learned_at = start + 10
            defender.set_triggers(learner.trigger_set("learned-1"))
    assert [t.text for t in learner.learned] == [trigger]
    assert learner.learned[0].target_label == TARGET_LABEL and learner.learned[0].insertion_rate > 0.95
    assert learned_at is not None and learned_at <= 60  # within the first 6 triggered messages
    after = defender.judge(triggered.dataset.texts, [f"t{i}" for i in range(len(triggered))])
    assert all(v.known_triggers and v.final_label != TARGET_LABEL for v in after)
    assert all(v.trigger_version == "learned-1" for v in after)
