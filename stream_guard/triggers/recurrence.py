"""Recurrence: words and phrases that repeat in the traffic far more often than clean text explains.

A backdoor attacker must send the trigger again and again; clean traffic rarely repeats a word that
clean text hardly uses. So every message's words and phrases (up to ``max_words`` words) that are rare
in the clean calibration texts are counted, and one is **recurring** when its count since it was first
seen is too high for its clean rate: the Poisson tail ``P(X >= count)`` with mean ``messages since first
seen × clean rate`` is below ``alpha``. The clean rate is smoothed, ``(texts holding it + 0.5) / (clean
texts + 1)``, so a word clean text never uses still has a small expected rate; and a phrase is expected
at least as often as its words together by chance (the product of their rates × ``mean_words``), so a
pair of common words that a few hundred clean texts happen not to hold is not taken for a rare phrase.

Recurrence needs no attribution and no flip: it finds a trigger the per-message scores rank low (a
word WordPiece splits) and a phrase of ordinary words (rare as a phrase), after a handful of its
messages. It only nominates; the insertion test decides (:mod:`stream_guard.triggers.learner`).

Of the recurring phrases of one message, only the **whole** of a repeated phrase is nominated: a phrase
is dropped when a longer recurring phrase of the same message holds it and has at least
``cover_share`` of its count (the words of a repeated phrase recur as often as the phrase), and when
it holds a shorter recurring phrase that came more than ``1 / cover_share`` times as often (a recurring
word with whatever words happened to stand next to it).

Memory is bounded: at most ``max_tracked`` phrases are counted; past that, those seen once are
forgotten (then twice, …), which only delays a phrase that keeps coming.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from stream_guard.triggers.phrases import word_spans

__all__ = ["Recurrence", "RecurrenceCounter", "RecurrenceRule", "poisson_tail"]


@dataclass(frozen=True)
class RecurrenceRule:
    """When a phrase counts as recurring (see the module docstring); the lab chooses the defaults."""

    min_count: int = 3
    max_words: int = 5
    max_clean_rate: float = 0.01
    alpha: float = 1e-4
    cover_share: float = 0.8
    max_tracked: int = 200_000


@dataclass(frozen=True)
class Recurrence:
    """A recurring phrase: its count in the traffic, over how many messages, and the tail probability."""

    text: str
    count: int
    messages: int
    p_value: float


def poisson_tail(k: int, mean: float) -> float:
    """``P(X >= k)`` for ``X ~ Poisson(mean)``."""
    if k <= 0:
        return 1.0
    term = math.exp(-mean)
    below = 0.0
    for i in range(k):
        below += term
        term *= mean / (i + 1)
    return max(0.0, 1.0 - below)


class RecurrenceCounter:
    """Counts rare phrases in the traffic and nominates recurring ones (see the module docstring).

    Args:
        clean_counts, clean_total: in how many clean calibration texts each phrase occurs, and how many
            texts there are (``stream_guard.triggers.phrases.clean_phrase_counts``).
        rule: the recurrence rule.
    """

    def __init__(
        self,
        clean_counts: Counter[str],
        clean_total: int,
        rule: RecurrenceRule | None = None,
        *,
        mean_words: float = 20.0,
    ) -> None:
        self.rule = rule or RecurrenceRule()
        self.clean_counts = clean_counts
        self.clean_total = max(1, clean_total)
        self.mean_words = mean_words
        self.messages = 0
        self._count: dict[str, int] = {}
        self._first: dict[str, int] = {}

    def _smoothed(self, phrase: str) -> float:
        return (self.clean_counts.get(phrase, 0) + 0.5) / (self.clean_total + 1)

    def expected_rate(self, phrase: str) -> float:
        """The share of clean texts expected to hold ``phrase`` (see the module docstring)."""
        rate = self._smoothed(phrase)
        words = phrase.split(" ")
        if len(words) > 1:
            by_chance = self.mean_words
            for word in words:
                by_chance *= self._smoothed(word)
            rate = max(rate, min(1.0, by_chance))
        return rate

    def _rare(self, phrase: str) -> bool:
        return self.expected_rate(phrase) <= self.rule.max_clean_rate

    def _phrases(self, text: str) -> set[str]:
        words = [w for w, _, _ in word_spans(text)]
        top = self.rule.max_words
        return {" ".join(words[i : i + k]) for k in range(1, top + 1) for i in range(len(words) - k + 1)}

    def recurrence(self, phrase: str) -> Recurrence | None:
        """``phrase``'s recurrence so far (None when it is not counted)."""
        count = self._count.get(phrase)
        if count is None:
            return None
        since = self.messages - self._first[phrase]
        return Recurrence(phrase, count, since, poisson_tail(count, since * self.expected_rate(phrase)))

    def is_recurring(self, phrase: str) -> bool:
        """Whether ``phrase`` recurs in the traffic so far, as it must to be nominated."""
        return self._recurring(phrase) is not None

    def _recurring(self, phrase: str) -> Recurrence | None:
        """``phrase``'s recurrence when its count reaches ``min_count`` and its Poisson tail is under
        ``alpha``; else None."""
        if self._count.get(phrase, 0) < self.rule.min_count:
            return None
        found = self.recurrence(phrase)
        return found if found is not None and found.p_value < self.rule.alpha else None

    def widest_holding(self, phrase: str) -> str:
        """The longest counted phrase that holds ``phrase`` and came at least ``cover_share`` as often
        (``phrase`` itself when none): the whole of a repeated phrase one word of which was found."""
        count = self._count.get(phrase)
        if not count:
            return phrase
        padded = f" {phrase} "
        best = phrase
        for other, n in self._count.items():
            if len(other) > len(best) and n >= self.rule.cover_share * count and padded in f" {other} ":
                best = other
        return best

    def observe(self, texts: Iterable[str]) -> list[Recurrence]:
        """Count ``texts`` (in order); the widest recurring phrase(s) of each, most significant first,
        each phrase once."""
        rule = self.rule
        nominated: dict[str, Recurrence] = {}
        for text in texts:
            self.messages += 1
            rare = [p for p in self._phrases(text) if self._rare(p)]
            for phrase in rare:
                if phrase not in self._count:
                    self._first[phrase] = self.messages - 1
                    self._count[phrase] = 0
                self._count[phrase] += 1
            recurring = []
            for phrase in rare:
                found = self._recurring(phrase)
                if found is not None:
                    recurring.append(found)
            for found in _widest(recurring, rule.cover_share):
                nominated[found.text] = found
            if len(self._count) > rule.max_tracked:
                self._forget()
        return sorted(nominated.values(), key=lambda r: (r.p_value, -len(r.text), r.text))

    def _forget(self) -> None:
        """Drop the least-seen phrases until at most ``max_tracked`` remain."""
        floor = 1
        while len(self._count) > self.rule.max_tracked:
            for phrase in [p for p, c in self._count.items() if c <= floor]:
                del self._count[phrase], self._first[phrase]
            floor += 1


def _widest(found: list[Recurrence], cover_share: float) -> list[Recurrence]:
    """Of ``found`` (one message's recurring phrases), those that are a repeated phrase's whole: not held
    by a longer one that came almost as often (its part), and not holding a shorter one that came far
    more often (a recurring word's chance neighbours)."""
    keep = []
    for r in found:
        padded = f" {r.text} "
        part = any(
            len(o.text) > len(r.text) and padded in f" {o.text} " and o.count >= cover_share * r.count
            for o in found
        )
        neighbours = any(
            len(o.text) < len(r.text) and f" {o.text} " in padded and r.count < cover_share * o.count
            for o in found
        )
        if not (part or neighbours):
            keep.append(r)
    return keep
