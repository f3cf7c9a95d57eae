"""Evidence for the trigger learner: a word whose neutralization flipped the model's prediction.

Every confirmed flag is such evidence (the defender rewrote the word and the label changed), and so is
a probe that flipped (a below-threshold text whose top word was rewritten for evidence only). A
backdoor trigger repeats across the traffic and always flips towards its target label; the learner
counts these and tests the candidates (:mod:`stream_guard.triggers.learner`).

Each piece of evidence carries the normalized word and a small window of its neighbours, so that a
learner can also count the phrases around it (a trigger made of several ordinary words repeats as a
phrase even when the attribution picks a different word of it each time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream_guard.triggers.phrases import word_spans

__all__ = ["WINDOW", "Evidence", "evidence_for_spans"]

WINDOW = 3
"""Neighbouring words kept on each side of the neutralized word."""


@dataclass(frozen=True)
class Evidence:
    """One observed flip.

    message_id:   the message it came from.
    word:         the neutralized word's normal form (several words when a span was neutralized).
    window:       normal forms of the words around it (at most ``WINDOW`` on each side), in order.
    position:     where ``word`` starts in ``window``; it takes ``len(word.split())`` entries.
    label_before: the model's label on the message (a backdoor's target when ``word`` is its trigger).
    label_after:  the label once the word was rewritten.
    confidence_drop: p(label_before) before minus after (0..1).
    probe:        True when the message was below the threshold and rewritten for evidence only.
    """

    message_id: str
    word: str
    window: tuple[str, ...]
    position: int
    label_before: int
    label_after: int
    confidence_drop: float
    probe: bool = False

    @property
    def flipped(self) -> bool:
        return self.label_after != self.label_before


def evidence_for_spans(
    message_id: str,
    text: str,
    spans: Sequence[tuple[int, int]],
    probabilities_before: Sequence[float],
    probabilities_after: Sequence[float],
    *,
    probe: bool = False,
) -> list[Evidence]:
    """Evidence for the rewritten ``spans`` of ``text`` when the prediction flipped; [] when it did not.

    A span covers the words it overlaps (a WordPiece token widened to its word, or a grown span).
    """
    before = max(range(len(probabilities_before)), key=probabilities_before.__getitem__)
    after = max(range(len(probabilities_after)), key=probabilities_after.__getitem__)
    if before == after:
        return []
    drop = float(probabilities_before[before]) - float(probabilities_after[before])
    words = word_spans(text)
    out = []
    for start, end in spans:
        inside = [i for i, (_, s, e) in enumerate(words) if s < end and e > start]
        if not inside:
            continue
        first, last = inside[0], inside[-1]
        lo, hi = max(0, first - WINDOW), min(len(words), last + 1 + WINDOW)
        out.append(
            Evidence(
                message_id=message_id,
                word=" ".join(w for w, _, _ in words[first : last + 1]),
                window=tuple(w for w, _, _ in words[lo:hi]),
                position=first - lo,
                label_before=before,
                label_after=after,
                confidence_drop=max(0.0, drop),
                probe=probe,
            )
        )
    return out
