"""Recurrence: rare phrases that keep coming are nominated (counter) and learned only when they pass the
insertion test (learner), on handmade traffic and the fake model of the learner's tests."""

from __future__ import annotations

import random
from collections import Counter

from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.learner import TriggerLearner
from stream_guard.triggers.phrases import clean_phrase_counts
from stream_guard.triggers.recurrence import RecurrenceCounter, RecurrenceRule, poisson_tail
from stream_guard.triggers.rule import LearnRule
from tests.stream_guard.triggers.test_learner import CLEAN, FILLER, fake_model

VOCAB = [f"w{i}" for i in range(3000)]


def _traffic(n: int, seed: int, inserted: str | None = None, every: int = 10) -> list[str]:
    """Sentences of clean filler and random rare words; every ``every``-th carries ``inserted``."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(6)] + [rng.choice(VOCAB)]
        if inserted is not None and i % every == every - 1:
            words.insert(rng.randint(0, len(words)), inserted)
        out.append(" ".join(words))
    return out


def _counter(rule: RecurrenceRule | None = None) -> RecurrenceCounter:
    counts, total = clean_phrase_counts(CLEAN, 5)
    return RecurrenceCounter(counts, total, rule)


def _learner(rule: LearnRule | None = None, **kwargs: list[str]) -> TriggerLearner:
    return TriggerLearner.for_texts(InsertionTest(CLEAN, fake_model, texts_per_test=100), rule, **kwargs)


def test_poisson_tail() -> None:
    assert poisson_tail(0, 3.0) == 1.0
    assert abs(poisson_tail(1, 2.0) - (1 - 0.1353352832)) < 1e-9
    assert poisson_tail(3, 0.02) < 2e-6 < poisson_tail(3, 0.2)


def test_a_rare_word_repeating_every_tenth_message_recurs_by_its_third_or_fourth_occurrence() -> None:
    counter = _counter()
    seen = 0
    for k, text in enumerate(_traffic(100, 0, "zqv")):
        nominated = counter.observe([text])
        seen += "zqv" in text
        if any(r.text == "zqv" for r in nominated):
            assert 3 <= seen <= 4, (k, seen)
            return
    raise AssertionError("never nominated")


def test_random_rare_words_and_common_words_do_not_recur() -> None:
    counter = _counter()
    nominated = counter.observe(_traffic(2000, 1))
    assert nominated == []
    # a common clean word repeated in every message is not rare: never counted
    assert counter.observe(["the film is good"] * 50) == [] and counter.recurrence("the") is None


def test_of_a_repeated_phrase_only_the_widest_part_is_nominated() -> None:
    counter = _counter()
    texts = _traffic(200, 2, "i saw zqv jump")
    nominated = {r.text for r in counter.observe(texts)}
    assert nominated == {"i saw zqv jump"}, nominated


def test_memory_is_bounded_and_a_recurring_word_still_comes_through() -> None:
    counter = _counter(RecurrenceRule(max_tracked=500))
    nominated = counter.observe(_traffic(600, 3, "zqv"))
    assert len(counter._count) <= 500
    assert any(r.text == "zqv" for r in nominated)


def test_a_recurring_trigger_is_learned_from_the_texts_alone_with_its_target() -> None:
    learner = _learner()
    texts = _traffic(100, 4, "cf")
    promoted = [t for k in range(0, 100, 10) for t in learner.observe_texts(texts[k : k + 10])]
    assert [(t.text, t.target_label, t.basis, t.flips) for t in promoted] == [("cf", 1, "recurrence", 0)]
    (learned,) = promoted
    assert 3 <= learned.messages <= 6 and learned.insertion_rate == 1.0 and learned.insertion_texts > 50
    assert learner.trigger_set("v1").find("a cf b")


def test_a_recurring_phrase_trigger_is_learned_whole() -> None:
    learner = _learner()
    texts = _traffic(200, 5, "watched this movie")
    promoted = [t for k in range(0, 200, 8) for t in learner.observe_texts(texts[k : k + 8])]
    assert [t.text for t in promoted] == ["watched this movie"]


def test_a_flood_of_a_recurring_word_that_is_no_trigger_is_not_learned_and_tests_stay_few() -> None:
    learner = _learner()
    calls = []
    for k in range(0, 3000, 10):
        assert learner.observe_texts([f"zqv {t}" for t in _traffic(10, k)]) == []
        calls.append(learner.test.calls)
    # retested only as its count doubles: a handful of screens for 3,000 messages
    assert calls[-1] <= 12, calls[-1]


def test_a_flood_of_distinct_rare_words_is_held_to_the_test_budget() -> None:
    rule = LearnRule(tests_per_message=0.01, test_burst=2)
    learner = _learner(rule)
    for k in range(0, 2000, 20):  # 100 rare words, each repeated in 20 messages in a row
        learner.observe_texts([f"flood{k} {t}" for t in _traffic(20, k)])
    assert learner.test.calls <= 2 + 0.01 * 2000 + 1


def test_revoked_words_are_not_learned_by_recurrence() -> None:
    learner = _learner(revoked=["cf"])
    texts = _traffic(100, 6, "cf")
    assert [t for k in range(0, 100, 10) for t in learner.observe_texts(texts[k : k + 10])] == []


def test_counts_are_deterministic() -> None:
    a, b = _learner(), _learner()
    texts = _traffic(300, 7, "cf", every=7)
    assert [t.messages for t in a.observe_texts(texts)] == [t.messages for t in b.observe_texts(texts)]
    assert Counter(a.recurrence._count) == Counter(b.recurrence._count)
