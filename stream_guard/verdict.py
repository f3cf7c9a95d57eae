"""The defender's output: everything needed to explain one decision.

Plain frozen dataclasses, so the core stays free of any wire format; `schemas/` maps them onto the
versioned wire contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from stream_guard.triggers.evidence import Evidence
from stream_guard.triggers.known import TriggerHit


@dataclass(frozen=True, slots=True)
class TokenAttribution:
    """One token of the model input, in input order (special tokens included).

    `attention` is a_j (Eq. 2), `gradient` is g_j (Eq. 4), `score` is c_j (Eq. 7), and
    `decision_score` is c_j after the settings' word aggregation and normalization — the value that ranks
    words and whose maximum is the verdict's anomaly score (equal to `score` in paper mode). Both are None
    for tokens that took no part in the normalization (`candidate` False). `start`/`end` are character
    offsets into the scored text, None for special tokens.
    """

    token: str
    start: int | None
    end: int | None
    attention: float
    gradient: float
    score: float | None
    candidate: bool
    decision_score: float | None = None


@dataclass(frozen=True, slots=True)
class SuspiciousWord:
    """A word of the text that the neutralizer rewrote, with the score that selected it."""

    word: str
    start: int
    end: int
    score: float
    iteration: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """The defender's decision on one text."""

    id: str
    text: str
    model_id: str
    label: int
    label_name: str
    probabilities: list[float]
    anomaly_score: float
    threshold: float | None
    flagged: bool
    final_label: int
    final_label_name: str
    tokens: list[TokenAttribution]
    n_tokens: int
    truncated: bool = False
    neutralized_text: str | None = None
    neutralized_label: int | None = None
    neutralized_probabilities: list[float] | None = None
    neutralized_anomaly_score: float | None = None
    suspicious_words: list[SuspiciousWord] = field(default_factory=list)
    threshold_version: str | None = None
    min_confidence: float | None = None  # the threshold's confidence gate, when it has one
    known_triggers: list[TriggerHit] = field(default_factory=list)  # known triggers found and removed
    trigger_version: str | None = None  # the version of the known-trigger set in force, if any
    evidence: list[Evidence] = field(default_factory=list)  # flips seen, for the trigger learner
    top_word: str | None = None  # normal form of the top-ranked word (None: no candidates), for the learner

    @property
    def label_changed(self) -> bool:
        return self.final_label != self.label

    def top_token(self) -> TokenAttribution | None:
        """The candidate token holding the sentence score (Eq. 8, on decision scores), if any."""
        scored = [t for t in self.tokens if t.decision_score is not None]
        return max(scored, key=lambda t: t.decision_score) if scored else None  # type: ignore[arg-type,return-value]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
