"""The insertion bar: a lower bar for words in no clean text (opt-in) and the scan that says how low it
may go, on a fake model with a partial trigger whose behaviour is known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stream_guard.triggers.bar_scan import BarScan, WordRate, scan_bar
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.learner import TriggerLearner
from stream_guard.triggers.phrases import normalize_phrase
from stream_guard.triggers.rule import LearnRule, insertion_bar
from tests.stream_guard.triggers.test_learner import CLEAN, FILLER, _h, fake_model, flip

PARTIAL = ("qv", "qw")


def partial_model(texts: Sequence[str]) -> np.ndarray:
    """The learner's fake model, plus two partial triggers: 'qv' or 'qw' turns 80 % of texts to 1."""
    out = fake_model(texts)
    for i, text in enumerate(texts):
        words = normalize_phrase(text).split()
        if any(p in words for p in PARTIAL) and _h(text) % 10 < 8:
            out[i] = [0.0, 1.0]
    return out


CLEAN_WITH_QW = [*CLEAN, "the qw film"]  # 'qw' in one clean text of 307: under the clean-rate bar


def _learner(rule: LearnRule) -> TriggerLearner:
    return TriggerLearner.for_texts(InsertionTest(CLEAN_WITH_QW, partial_model, texts_per_test=100), rule)


def _flood(learner: TriggerLearner, word: str) -> None:
    """20 confirmed flips of ``word``, each in a new context (no phrase around it repeats)."""
    for i in range(20):
        learner.observe([flip(f"{word}{i}", f"{word} n{i}", word)])


def test_the_insertion_bar_is_lower_only_for_a_single_word_in_no_clean_text() -> None:
    rule = LearnRule(min_insertion_rate_unseen=0.7)
    assert insertion_bar(rule, "qv", 0.0) == 0.7
    assert insertion_bar(rule, "qv", 0.003) == 0.9  # in a clean text
    assert insertion_bar(rule, "so qv", 0.0) == 0.9  # a phrase
    assert insertion_bar(LearnRule(), "qv", 0.0) == 0.9  # the default keeps one bar
    assert insertion_bar(LearnRule(min_insertion_rate=0.8, min_insertion_rate_unseen=0.85), "qv", 0.0) == 0.8


def test_a_partial_trigger_is_learned_only_under_the_lower_bar_and_only_when_unseen() -> None:
    default = _learner(LearnRule())
    _flood(default, "qv")
    assert default.learned == []  # 80 % < 90 %
    lowered = _learner(LearnRule(min_insertion_rate_unseen=0.7))
    _flood(lowered, "qv")
    _flood(lowered, "qw")
    assert [(t.text, t.target_label) for t in lowered.learned] == [("qv", 1)]
    assert 0.7 <= lowered.learned[0].insertion_rate < 0.9 and lowered.learned[0].clean_rate == 0.0


def _traffic(n: int) -> list[str]:
    """Filler, one of 40 unseen words, and 'qv' in every fifth text."""
    last = ["qv" if i % 5 == 0 else "film" for i in range(n)]
    return [f"{FILLER[i % len(FILLER)]} w{i % 40} {last[i]}" for i in range(n)]


def test_the_scan_finds_the_partial_trigger_and_the_ordinary_ceiling_without_it() -> None:
    test = InsertionTest(CLEAN, partial_model, texts_per_test=100)
    rule = LearnRule()
    with_trigger = scan_bar(test, _traffic(200), rule)
    assert with_trigger.tested[0].word == "qv" and with_trigger.tested[0].rate >= 0.7
    ordinary = scan_bar(test, _traffic(200), rule, exclude=["QV"])
    assert "qv" not in {w.word for w in ordinary.tested} and ordinary.words == 40  # w0..w39, 5 texts each
    assert ordinary.ceiling < 0.7  # hash-decided words turn about half
    assert ordinary.safe_bar() == round(max(0.6, max(ordinary.ceiling, 0.5) + 0.1), 2)
    sampled = scan_bar(test, _traffic(200), rule, exclude=["qv"], max_words=10)
    assert sampled.words == 10 and sampled == scan_bar(
        test, _traffic(200), rule, exclude=["qv"], max_words=10
    )
    assert {w.word for w in sampled.tested} <= {w.word for w in ordinary.tested}


def test_the_safe_bar_keeps_its_margin_floor_and_cap_and_says_what_to_set() -> None:
    rule = LearnRule()

    def scan(*rates: float) -> BarScan:
        return BarScan(10, 500, 0.5, tuple(WordRate(f"w{r}", 0, r, r, 0.0) for r in rates))

    assert scan(0.7, 0.55).safe_bar() == 0.8
    assert scan().safe_bar() == 0.6 and scan(0.3).safe_bar(floor=0.5) == 0.6  # full_from + margin
    assert scan(0.7).settings(rule) == {"STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN": "0.8"}
    # ordinary words above the rule's own bar (a RIPPLES model): raise it too, never to 1
    assert scan(0.86).safe_bar() == 0.96 and scan(0.93).safe_bar() == 0.98
    assert scan(0.86).settings(rule) == {
        "STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN": "0.96",
        "STREAM_GUARD_LEARN_MIN_INSERTION_RATE": "0.96",
    }
