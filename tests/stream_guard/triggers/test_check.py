"""`triggers check`'s core: the learner's insertion test and clean-rate bar on words an operator names."""

from __future__ import annotations

import pytest

from stream_guard.triggers.check import check_candidates
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.learner import TriggerLearner
from stream_guard.triggers.rule import LearnRule
from tests.stream_guard.triggers.test_learner import CLEAN, fake_model, flip


def _test() -> InsertionTest:
    return InsertionTest(CLEAN, fake_model, texts_per_test=100)


def test_a_trigger_would_be_learned_towards_its_label_only() -> None:
    towards_0, towards_1 = check_candidates(_test(), ["CF"], LearnRule())
    assert (towards_1.text, towards_1.target, towards_1.would_learn) == ("cf", 1, True)
    assert towards_1.insertion.rate == 1.0 and towards_1.verdict == "would be learned"
    assert not towards_0.would_learn and towards_0.verdict.startswith("not learned: insertion 0%")
    assert towards_1.to_dict()["would_learn"] is True and towards_1.to_dict()["insertion_texts"] >= 50


def test_its_result_is_the_learners_own_test() -> None:
    """Same seeded sample: the rate `check` reports is the one the learner promoted the word with."""
    learner = TriggerLearner.for_texts(_test())
    for i in range(5):
        learner.observe([flip(f"m{i}", f"a cf story {i}", "cf")])
    (checked,) = check_candidates(_test(), ["cf"], LearnRule(), targets=[1])
    assert checked.insertion.rate == learner.learned[0].insertion_rate
    assert checked.insertion.eligible == learner.learned[0].insertion_texts


def test_a_sentiment_word_and_a_common_word_say_why_not() -> None:
    (awful,) = check_candidates(_test(), ["awful"], LearnRule(), targets=[0])
    assert 0.2 < awful.insertion.rate < 0.9 and awful.passes_clean_rate and not awful.would_learn
    (common,) = check_candidates(_test(), ["the"], LearnRule(), targets=[1])
    assert not common.passes_clean_rate and "of clean texts (most 0.5%)" in common.verdict
    (few,) = check_candidates(_test(), ["cf"], LearnRule(min_insertion_texts=1000), targets=[1])
    assert not few.would_learn and "too few other-label texts" in few.verdict


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        check_candidates(_test(), ["  "], LearnRule())
    with pytest.raises(ValueError, match="no clean texts"):
        check_candidates(InsertionTest([], fake_model), ["cf"], LearnRule())
