"""What the trigger learner promotes on, and what a promotion records.

:class:`LearnRule` holds the numbers of the promotion rule (the rules themselves are told in
:mod:`stream_guard.triggers.learner`; ``STREAM_GUARD_LEARN_*`` sets them,
:mod:`stream_guard.triggers.learn_settings`); :func:`insertion_passes` is rule 4's verdict, shared by the
learner and ``stream-guard triggers check``; :class:`LearnedTrigger` is a promoted trigger with the
evidence that justified it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stream_guard.triggers.insertion import InsertionResult

__all__ = ["LearnRule", "LearnedTrigger", "insertion_passes"]


@dataclass(frozen=True)
class LearnRule:
    """The promotion rule (see the module docstring); the lab chooses the defaults."""

    min_flips: int = 5
    min_target_share: float = 0.9
    max_clean_rate: float = 0.005
    min_insertion_rate: float = 0.9
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


def insertion_passes(rule: LearnRule, result: InsertionResult) -> bool:
    """An insertion test that says *backdoor*: enough texts tested, almost all turned (rule 4)."""
    return result.eligible >= rule.min_insertion_texts and result.rate >= rule.min_insertion_rate


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
