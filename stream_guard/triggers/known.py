"""Known triggers: a versioned set of words and phrases, and where they occur in a text.

A trigger matches whole words only, on normal forms (:mod:`stream_guard.triggers.phrases`): ``cf``
matches "CF" and "cf," but not "cfz" or "of"; a phrase matches its words in a row. Matching costs one
regex pass over the text and a dictionary look-up per word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from stream_guard.triggers.phrases import normalize_phrase, word_spans

__all__ = ["KnownTrigger", "TriggerHit", "TriggerSet"]

TriggerSource = Literal["learned", "operator"]


@dataclass(frozen=True)
class KnownTrigger:
    """A trigger the defender neutralizes wherever it occurs.

    text:          its normal form (a word, or words joined by one space).
    target_label:  the label it forces, when known (learned triggers; None for one an operator added).
    source:        "learned" from the traffic, or added by an "operator".
    """

    text: str
    target_label: int | None = None
    source: TriggerSource = "learned"

    def __post_init__(self) -> None:
        normal = normalize_phrase(self.text)
        if not normal:
            raise ValueError(f"a trigger needs at least one word: {self.text!r}")
        object.__setattr__(self, "text", normal)


@dataclass(frozen=True)
class TriggerHit:
    """One occurrence of a known trigger in a text: [start, end) in that text."""

    trigger: str
    start: int
    end: int


@dataclass(frozen=True)
class TriggerSet:
    """The known triggers of one model, with the version of the update that set them."""

    version: str
    triggers: tuple[KnownTrigger, ...] = ()
    _by_first: dict[str, list[tuple[str, ...]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_first: dict[str, list[tuple[str, ...]]] = {}
        for trigger in self.triggers:
            words = tuple(trigger.text.split(" "))
            by_first.setdefault(words[0], []).append(words)
        for phrases in by_first.values():
            phrases.sort(key=len, reverse=True)  # the longest phrase wins where several start
        object.__setattr__(self, "_by_first", by_first)

    @classmethod
    def empty(cls) -> TriggerSet:
        return cls(version="none")

    def __len__(self) -> int:
        return len(self.triggers)

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and any(t.text == normalize_phrase(text) for t in self.triggers)

    def find(self, text: str) -> list[TriggerHit]:
        """Every occurrence of a known trigger in ``text``, left to right: at each word the longest
        trigger that starts there, unless it lies inside the hit before. Hits may overlap: two learned
        parts of one longer phrase ("my friend told me about" and "told me about it yesterday" of a
        7-word trigger) both hit, and their deletion (spans merged) removes the whole phrase."""
        if not self._by_first:
            return []
        words = word_spans(text)
        hits: list[TriggerHit] = []
        covered = 0  # the word index where the hits so far end
        for i, (word, start, _) in enumerate(words):
            for phrase in self._by_first.get(word, ()):
                n = len(phrase)
                if tuple(w for w, _, _ in words[i : i + n]) == phrase:
                    if i + n > covered:
                        hits.append(TriggerHit(" ".join(phrase), start, words[i + n - 1][2]))
                        covered = i + n
                    break
        return hits
