"""Pick the words to neutralize: the highest-scoring candidate tokens, widened to whole words.

A word is the tokenizer's pre-tokenized word (`word_ids`): "xyzzy" -> x ##y ##zzy is one word, so a
trigger split into several pieces is rewritten whole and no surviving piece can still fire.

With `span_ratio`, a pick grows into a *span*: the neighbouring words on either side join it while their
score is at least `span_ratio` times the top word's, so an inserted phrase ("i watched this 3d movie")
is rewritten together instead of one word per round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stream_guard.neutralize import Edit

if TYPE_CHECKING:
    from stream_guard.scores import TextScores


@dataclass(frozen=True)
class Pick:
    start: int
    end: int
    score: float

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def select_words(
    scores: TextScores,
    excluded: Sequence[tuple[int, int]],
    k: int,
    span_ratio: float | None = None,
    max_span_words: int = 8,
) -> list[Pick]:
    """Up to `k` distinct words (spans, with `span_ratio`), best first, skipping words that overlap
    `excluded` char spans."""
    enc = scores.encoded
    ranked = np.where(scores.candidates, np.nan_to_num(scores.ranking, nan=-np.inf), -np.inf)
    word_ids = np.array([-1 if w is None else w for w in enc.word_ids])
    offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
    picks: list[Pick] = []
    seen: set[int] = set()
    for j in np.argsort(-ranked, kind="stable"):
        if len(picks) >= k or not np.isfinite(ranked[j]):
            break
        word = int(word_ids[j])
        if word < 0 or word in seen:
            continue
        words = [word]
        if span_ratio is not None and ranked[j] > 0:
            words = _grow_span(word, ranked, word_ids, span_ratio * float(ranked[j]), seen, max_span_words)
        members = np.isin(word_ids, words)
        start, end = int(offsets[members, 0].min()), int(offsets[members, 1].max())
        seen.update(words)
        if end <= start or _overlaps(start, end, excluded):
            continue
        picks.append(Pick(start, end, float(ranked[j])))
    return picks


def _grow_span(
    word: int, ranked: np.ndarray, word_ids: np.ndarray, floor: float, taken: set[int], limit: int
) -> list[int]:
    """`word` and its run of neighbours (by word index) whose best token scores at least `floor`."""
    real = word_ids >= 0
    best = np.full(int(word_ids.max()) + 1, -np.inf)
    np.maximum.at(best, word_ids[real], ranked[real])
    span = [word]
    for step in (-1, 1):
        other = word + step
        while len(span) < limit and 0 <= other < len(best) and other not in taken and best[other] >= floor:
            span.append(other)
            other += step
    return sorted(span)


def shift_spans(spans: Sequence[tuple[int, int]], edits: Sequence[Edit]) -> list[tuple[int, int]]:
    """Move spans of the old text to the new text; edits must not overlap the spans."""
    out = []
    for start, end in spans:
        delta = sum((e.new_end - e.new_start) - (e.end - e.start) for e in edits if e.end <= start)
        out.append((start + delta, end + delta))
    return out


def unshift_span(span: tuple[int, int], history: Sequence[Sequence[Edit]]) -> tuple[int, int]:
    """Map a span of the text after all `history` rounds back to the original text.

    Valid for spans that no edit touched (selection never picks a rewritten word again).
    """
    start, end = span
    for edits in reversed(history):
        delta = sum((e.new_end - e.new_start) - (e.end - e.start) for e in edits if e.new_end <= start)
        start, end = start - delta, end - delta
    return start, end


def spans_after_edits(spans: Sequence[tuple[int, int]], edits: Sequence[Edit]) -> list[tuple[int, int]]:
    """Spans moved through `edits`, plus the rewritten words' new spans (all excluded from later picks)."""
    moved = shift_spans(spans, edits)
    return moved + [(e.new_start, e.new_end) for e in edits if e.new_end > e.new_start]
