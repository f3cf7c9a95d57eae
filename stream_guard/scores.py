"""The defense's intermediate data: a text's X-GRAAD attributions (`TextScores`) and a flagged text's
neutralization in progress (`Neutralization`).

Plain data, no model code and no torch: the model runner produces it, selection, the neutralize rounds
and the verdict builder read it, and none of them needs to import another to share it.

Shapes: n = the text's token count (special tokens included), C = classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from stream_guard.encoding import EncodedText
    from stream_guard.neutralize import Edit
    from stream_guard.verdict import SuspiciousWord

__all__ = ["Neutralization", "TextScores"]


@dataclass
class TextScores:
    """Attributions of one text, trimmed to its real tokens.

    probabilities: (C,) softmax of the classifier's logits.
    attention:     (n,) a_j, Eq. 2.
    gradient:      (n,) g_j, Eq. 4.
    score:         (n,) c_j, Eq. 7; NaN off-candidate.
    candidates:    (n,) bool, the tokens that took part in the normalization.
    anomaly:       S, the max of `ranking` (0.0 without candidates; NaN for a prediction only).
    ranking:       (n,) c_j after the settings' word aggregation / normalization; NaN off-candidate.
    """

    encoded: EncodedText
    probabilities: np.ndarray
    attention: np.ndarray
    gradient: np.ndarray
    score: np.ndarray
    candidates: np.ndarray
    anomaly: float
    ranking: np.ndarray

    @classmethod
    def prediction_only(cls, encoded: EncodedText, probabilities: np.ndarray) -> TextScores:
        """A plain forward's result: `probabilities` (C,), NaN anomaly and attributions, no candidates."""
        nothing = np.full(len(encoded), np.nan)
        return cls(
            encoded=encoded,
            probabilities=probabilities,
            attention=nothing,
            gradient=nothing,
            score=nothing,
            candidates=np.zeros(len(encoded), dtype=bool),
            anomaly=float("nan"),
            ranking=nothing,
        )

    @property
    def label(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def has_candidates(self) -> bool:
        return bool(self.candidates.any())


@dataclass
class Neutralization:
    """A flagged text through the neutralize rounds: the current rewrite and its scores, the spans of the
    rewrite that later rounds must not pick, the words rewritten so far (offsets into the original
    text), and the edits of each round (to map spans of the rewrite back to the original)."""

    text: str
    scores: TextScores
    excluded: list[tuple[int, int]] = field(default_factory=list)
    words: list[SuspiciousWord] = field(default_factory=list)
    history: list[list[Edit]] = field(default_factory=list)
