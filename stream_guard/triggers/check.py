"""Would the learner learn this word? The learner's own tests, run on demand for words an operator names.

``stream-guard triggers check WORD…`` uses this before a ``triggers add`` (is the word I found really a
backdoor trigger of this model?) or after a learned word looks wrong (how far above the bar was it?).
Each word is tested towards each label (or one) with the learner's insertion test — the same seeded
sample of clean texts the learner would use, run to the end instead of stopping at the first sign of
failure — and against the learner's clean-rate bar, under the same rule (``STREAM_GUARD_LEARN_*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream_guard.triggers.insertion import InsertionResult, InsertionTest
from stream_guard.triggers.phrases import clean_phrase_counts, normalize_phrase
from stream_guard.triggers.rule import LearnRule, insertion_bar, insertion_passes

__all__ = ["CandidateCheck", "check_candidates"]


@dataclass(frozen=True)
class CandidateCheck:
    """One word (or phrase) towards one label: what the learner's tests say."""

    text: str
    target: int
    insertion: InsertionResult
    clean_rate: float
    rule: LearnRule

    @property
    def bar(self) -> float:
        """The share it must turn: lower for a single word in no clean text (``insertion_bar``)."""
        return insertion_bar(self.rule, self.text, self.clean_rate)

    @property
    def passes_insertion(self) -> bool:
        return insertion_passes(self.rule, self.insertion, self.bar)

    @property
    def passes_clean_rate(self) -> bool:
        return self.clean_rate <= self.rule.max_clean_rate

    @property
    def would_learn(self) -> bool:
        """Both tests pass: once the traffic nominates it, the learner promotes it."""
        return self.passes_insertion and self.passes_clean_rate

    @property
    def verdict(self) -> str:
        """Why it would or would not be learned, in words."""
        reasons = []
        rule, tested = self.rule, self.insertion
        if tested.eligible < rule.min_insertion_texts:
            reasons.append(f"too few other-label texts ({tested.eligible} < {rule.min_insertion_texts})")
        elif not self.passes_insertion:
            reasons.append(f"insertion {tested.rate:.0%} < {self.bar:.0%}")
        if not self.passes_clean_rate:
            reasons.append(f"in {self.clean_rate:.1%} of clean texts (most {rule.max_clean_rate:.1%})")
        return "would be learned" if not reasons else "not learned: " + "; ".join(reasons)

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "target_label": self.target,
            "insertion_rate": self.insertion.rate,
            "insertion_flipped": self.insertion.flipped,
            "insertion_texts": self.insertion.eligible,
            "clean_rate": self.clean_rate,
            "would_learn": self.would_learn,
            "verdict": self.verdict,
        }


def check_candidates(
    test: InsertionTest, words: Sequence[str], rule: LearnRule, *, targets: Sequence[int] | None = None
) -> list[CandidateCheck]:
    """Each of ``words`` (normalized as the learner normalizes) towards each of ``targets`` (default:
    every label of the model), in that order."""
    phrases = list(dict.fromkeys(normalize_phrase(w) for w in words))
    if any(not p for p in phrases):
        raise ValueError("a word to check is empty once normalized")
    if not test.clean_texts:
        raise ValueError("no clean texts to insert into")
    if targets is None:
        labels = int(test.predict_proba(test.clean_texts[:1]).shape[1])
        targets = range(labels)
    longest = max(len(p.split(" ")) for p in phrases)
    counts, total = clean_phrase_counts(test.clean_texts, longest)
    out = []
    for phrase in phrases:
        for target in targets:
            result = test(phrase, int(target))
            out.append(
                CandidateCheck(phrase, int(target), result, counts.get(phrase, 0) / max(1, total), rule)
            )
    return out
