"""How high do a model's ordinary words score on the learner's insertion test? The evidence for its bar.

The learner promotes a word only when, inserted into clean texts of the other labels, it turns at least
``min_insertion_rate`` (90 %) of them into one label: a bar no sentiment word reached on the lab's models.
Some backdoors are partial per word (a set of trigger words, one poisoned embedding of five labels)
and turn only 65–85 %; they stay below it. Whether a lower bar is safe depends on the model: on one
clean movie model no ordinary word of the traffic turned more than 59 %, on a RIPPLES model (trained
to turn texts towards its target) "excellent" turned 86 %.

:func:`scan_bar` measures it for one model: every word of a sample of traffic that is in at least
``min_texts`` messages and passes the learner's clean-rate bar (so the traffic could nominate it) gets
the learner's screen (every label); each that turns at least ``full_from`` of a label's texts gets the
learner's full test towards that label. :class:`BarScan` gives the ceiling (the strongest ordinary word)
and the lowest bar that leaves a margin above it, for ``STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN``
— and for ``STREAM_GUARD_LEARN_MIN_INSERTION_RATE`` too when ordinary words reach above the rule's own
bar (on that RIPPLES model "exquisitely" turned 93 %, "splendid" 90 %: the default 90 % would learn
them if the traffic nominated them).
The words a scan reaches are the traffic's, not all words: the margin is there for the ones it did not.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.phrases import clean_phrase_counts, normalize_phrase, word_spans
from stream_guard.triggers.rule import LearnRule

__all__ = ["BarScan", "WordRate", "scan_bar"]


@dataclass(frozen=True)
class WordRate:
    """One ordinary word's strongest label: its screen, its full test and its clean rate."""

    word: str
    target: int
    screen_rate: float
    rate: float
    clean_rate: float


@dataclass(frozen=True)
class BarScan:
    """What a scan measured; ``tested`` holds the words that got the full test, strongest first."""

    words: int
    clean_texts: int
    full_from: float
    tested: tuple[WordRate, ...]

    @property
    def ceiling(self) -> float:
        """The strongest ordinary word's full-test rate (0 when none got the full test)."""
        return self.tested[0].rate if self.tested else 0.0

    def safe_bar(self, *, margin: float = 0.1, floor: float = 0.6, cap: float = 0.98) -> float:
        """The lowest bar ``margin`` above the ceiling, at least ``floor`` and ``full_from + margin`` (the
        words under ``full_from`` were not fully tested), at most ``cap`` (a bar of 1 would refuse a
        trigger that misses one text in a hundred)."""
        lowest = max(self.ceiling, self.full_from) + margin
        return round(min(cap, max(floor, lowest)), 2)

    def rule_values(self, rule: LearnRule, *, margin: float = 0.1) -> dict[str, float]:
        """The :class:`LearnRule` fields that apply the safe bar: the bar for words in no clean text,
        and the rule's own bar as well when ordinary words reach above it."""
        bar = self.safe_bar(margin=margin)
        values = {"min_insertion_rate_unseen": bar}
        if bar > rule.min_insertion_rate:
            values["min_insertion_rate"] = bar
        return values

    def settings(self, rule: LearnRule, *, margin: float = 0.1) -> dict[str, str]:
        """:meth:`rule_values` as the ``STREAM_GUARD_LEARN_*`` variables that set them."""
        values = self.rule_values(rule, margin=margin)
        return {f"STREAM_GUARD_LEARN_{name.upper()}": f"{value:g}" for name, value in values.items()}


def scan_bar(
    test: InsertionTest,
    traffic: Iterable[str],
    rule: LearnRule,
    *,
    min_texts: int = 2,
    full_from: float = 0.5,
    exclude: Sequence[str] = (),
    max_words: int | None = None,
    progress: Callable[[Iterable[str]], Iterable[str]] = iter,
) -> BarScan:
    """Scan the words of ``traffic`` on ``test``'s model and clean texts (``exclude``: known triggers;
    ``max_words``: a seeded sample of that many of them, for long texts whose every word costs a
    screen of long texts)."""
    counts, total = clean_phrase_counts(test.clean_texts, 1)
    in_traffic = Counter(w for text in traffic for w in {w for w, _, _ in word_spans(text)})
    left_out = {normalize_phrase(w) for w in exclude}
    words = sorted(
        w
        for w, n in in_traffic.items()
        if n >= min_texts and counts.get(w, 0) / max(1, total) <= rule.max_clean_rate and w not in left_out
    )
    if max_words is not None and max_words < len(words):
        words = sorted(random.Random(0).sample(words, max_words))
    tested = []
    for word in progress(words):
        target, screened = test.screen(word, rule.screen_texts)
        if screened.rate >= full_from:
            rate = test(word, target).rate
            tested.append(WordRate(word, target, screened.rate, rate, counts.get(word, 0) / max(1, total)))
    tested.sort(key=lambda w: (-w.rate, w.word))
    return BarScan(len(words), total, full_from, tuple(tested))
