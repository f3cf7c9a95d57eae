"""First sight: a message's top word tested the first time it comes (fake model, known behaviour)."""

from __future__ import annotations

import numpy as np

from stream_guard.triggers.first_sight import AnomalyRanks, TokenBucket
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.learner import TriggerLearner
from stream_guard.triggers.rule import LearnRule
from tests.stream_guard.triggers.test_learner import CLEAN, fake_model


def _learner(rule: LearnRule | None = None) -> TriggerLearner:
    return TriggerLearner.for_texts(InsertionTest(CLEAN, fake_model, texts_per_test=100), rule)


def _warm(learner: TriggerLearner, n: int = 40) -> None:
    """Messages scoring 0.0 .. 1.0 with nothing to nominate: the anomaly history of the traffic."""
    for value in np.linspace(0.0, 1.0, n):
        assert learner.nominate(None, 0, float(value)) is None


def test_anomaly_ranks_gate_on_the_recent_traffic_only() -> None:
    ranks = AnomalyRanks(window=4, min_seen=2)
    assert ranks.add(5.0) == 0.0  # no history: nothing ranks high yet
    ranks.add(1.0)
    assert ranks.add(3.0) == 0.5  # above 1.0, below 5.0
    ranks.add(2.0)
    ranks.add(2.5)  # 5.0 leaves the window of 4
    assert ranks.add(4.0) == 1.0


def test_the_bar_rises_as_the_budget_runs_low() -> None:
    bucket = TokenBucket(rate=0.25, burst=8.0)
    assert bucket.gate(0.5) == 0.5
    bars = []
    while bucket.take():
        bars.append(bucket.gate(0.5))
    assert bars == sorted(bars) and bars[-1] > 0.95 and bucket.gate(0.5) == 1.0


def test_token_bucket_pays_for_a_bounded_number_of_tests() -> None:
    bucket = TokenBucket(rate=0.5, burst=2.0)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    bucket.refill(1)
    assert not bucket.take()
    bucket.refill(1)
    assert bucket.take()


def test_a_trigger_is_learned_the_first_time_it_is_the_top_word_of_a_high_scoring_message() -> None:
    learner = _learner()
    _warm(learner)
    learned = learner.nominate("cf", 1, 0.9)
    assert learned is not None
    assert (learned.text, learned.target_label, learned.basis) == ("cf", 1, "attribution")
    assert learned.insertion_rate >= 0.9 and learned.insertion_texts > 50
    assert learner.trigger_set("v").find("a CF b")
    assert learner.nominate("cf", 1, 0.9) is None  # known now


def test_low_scoring_messages_common_words_and_wrong_targets_are_not_learned() -> None:
    learner = _learner()
    _warm(learner)
    calls = learner.test.calls
    assert learner.nominate("cf", 1, 0.1) is None  # below the traffic's median: not even tested
    assert learner.nominate("film", 1, 0.95) is None  # common in clean text: not tested
    assert learner.test.calls == calls
    assert learner.nominate("cf", 0, 0.95) is None  # 'cf' forces 1, not 0: its screen fails
    assert learner.test.calls == calls + 1 and learner.learned == []


def test_a_sentiment_word_is_screened_once_and_never_learned() -> None:
    learner = _learner()
    _warm(learner)
    for _ in range(20):
        assert learner.nominate("awful", 0, 0.99) is None
    assert learner.test.calls <= 2 and learner.learned == []  # screened once (maybe a full test)


def test_a_flood_of_fresh_rare_words_costs_a_bounded_number_of_screens() -> None:
    rule = LearnRule(first_sight_per_message=0.1, test_burst=4.0)
    learner = _learner(rule)
    _warm(learner)
    for i in range(200):
        learner.nominate(f"zzword{i}", 1, 0.99)
    # 4 saved + 0.1 for each of the 240 messages
    assert learner.test.calls <= 4 + 0.1 * 240 + 1 and learner.learned == []


def test_insertion_tests_that_cannot_pass_stop_early_with_the_same_outcome() -> None:
    test = InsertionTest(CLEAN, fake_model, texts_per_test=100)
    full = test("awful", 0)
    texts = test.texts
    early = test("awful", 0, stop_below=0.9)
    assert full.rate < 0.9 and early.rate < 0.9
    assert early.eligible < full.eligible and test.texts - texts == early.eligible
    assert test("cf", 1, stop_below=0.9) == test("cf", 1)  # a passing test runs to the end
    assert test("cf", 1, limit=4).eligible == 4


def test_first_sight_of_a_word_of_a_repeated_phrase_learns_the_phrase() -> None:
    """The top word of an AddSent message may be the phrase's rarest word; the phrase recurs whole in the
    traffic, so first sight learns the phrase (deleting the word alone may leave a phrase that fires)."""
    learner = _learner()
    _warm(learner)
    tails = ["today", "again", "for us", "at last"]
    for i in range(4):  # the traffic so far, counted (its recurrence tests left aside)
        learner.recurrence.observe([f"{i} people on a cf day {tails[i]}"])
    learned = learner.nominate("cf", 1, 0.9)
    assert learned is not None and learned.text == "people on a cf day"
    alone = _learner()  # cf inserted anywhere: no phrase comes with it, the word is learned
    _warm(alone)
    for i in range(4):
        alone.recurrence.observe([f"{tails[i]} {i} cf people" if i % 2 else f"cf {i} {tails[i]} day"])
    learned = alone.nominate("cf", 1, 0.9)
    assert learned is not None and learned.text == "cf"
