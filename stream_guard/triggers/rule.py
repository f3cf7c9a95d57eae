"""What the trigger learner promotes on, and what a promotion records.

:class:`LearnRule` holds the numbers of the promotion rule (the rules themselves are told in
:mod:`stream_guard.triggers.learner`; ``STREAM_GUARD_LEARN_*`` sets them,
:mod:`stream_guard.triggers.learn_settings`); :func:`insertion_bar` and :func:`insertion_passes` are
rule 4's bar and verdict, shared by the learner and ``stream-guard triggers check``;
:class:`LearnedTrigger` is a promoted trigger with the evidence that justified it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stream_guard.triggers.insertion import InsertionResult

__all__ = ["LearnRule", "LearnedTrigger", "insertion_bar", "insertion_passes"]


@dataclass(frozen=True)
class LearnRule:
    """The promotion rule (see the module docstring); the lab chooses the defaults."""

    min_flips: int = 5
    min_target_share: float = 0.9
    max_clean_rate: float = 0.005
    min_insertion_rate: float = 0.9
    # rule 4's bar for a single word that no clean calibration text holds (see insertion_bar); off
    # (= min_insertion_rate) unless `stream-guard triggers bar` says how low it may go on the model
    min_insertion_rate_unseen: float = 0.9
    min_insertion_texts: int = 20
    max_words: int = 4
    max_triggers: int = 64
    screen_texts: int = 16
    min_screen_rate: float = 0.75
    tests_per_message: float = 0.05
    test_burst: float = 8.0
    first_sight_quantile: float = 0.5
    first_sight_texts: int = 4
    first_sight_per_message: float = 0.1
    first_sight_warmup: int = 20


def insertion_bar(rule: LearnRule, phrase: str, clean_rate: float) -> float:
    """The share of other-label texts ``phrase`` must turn (rule 4): ``min_insertion_rate``, or
    ``min_insertion_rate_unseen`` (if lower) for a single word in none of the clean texts.

    A backdoor can be partial per word (a set of trigger words, one poisoned embedding of five labels):
    its words turn 65–85 % of clean texts, below the 90 % that keeps sentiment words out. How low the
    bar may go depends on the model (:mod:`stream_guard.triggers.bar_scan`: ordinary words stayed
    under 60 % on a clean movie model, "excellent" turned 86 % on a RIPPLES one), so the default keeps
    one bar and ``stream-guard triggers bar`` measures a model's. Phrases keep the high bar: "so
    boring" is in no clean text as a phrase yet carries a sentiment word."""
    if clean_rate == 0 and " " not in phrase:
        return min(rule.min_insertion_rate_unseen, rule.min_insertion_rate)
    return rule.min_insertion_rate


def insertion_passes(rule: LearnRule, result: InsertionResult, bar: float) -> bool:
    """An insertion test that says *backdoor*: enough texts tested, at least ``bar`` of them turned
    (rule 4; ``bar`` from :func:`insertion_bar`)."""
    return result.eligible >= rule.min_insertion_texts and result.rate >= bar


@dataclass(frozen=True)
class LearnedTrigger:
    """A promoted trigger and the evidence that justified it."""

    text: str
    target_label: int
    flips: int
    messages: int
    probes: int
    first_seen: datetime | None
    last_seen: datetime | None
    insertion_rate: float
    insertion_texts: int
    clean_rate: float
    learned_at: datetime | None
    # what nominated it: "flips" (evidence), "recurrence" (the traffic's texts) or "attribution" (first
    # sight: a message's top-ranked word)
    basis: str = "flips"

    @property
    def evidence_text(self) -> str:
        """What nominated it, in words: "recurred in 4 messages" or "5 flips from 5 messages"."""
        if self.basis == "recurrence":
            return f"recurred in {self.messages} messages"
        if self.basis == "attribution":
            return f"top-ranked word of a high-scoring message, seen in {self.messages} so far"
        return f"{self.flips} flips from {self.messages} messages"
