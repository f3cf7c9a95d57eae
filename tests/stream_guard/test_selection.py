"""Word selection: whole words, exclusions, and spans over neighbouring high-scoring words."""

from __future__ import annotations

import numpy as np

from stream_guard.encoding import EncodedText
from stream_guard.scores import TextScores
from stream_guard.selection import select_words

TEXT = "i watched this 3d movie and it was fun"


def _scores(word_scores: list[float], text: str = TEXT) -> TextScores:
    """[CLS] + one token per word + [SEP], each word scored as given (specials off-candidate)."""
    words, offsets, pos = text.split(), [], 0
    for w in words:
        start = text.index(w, pos)
        offsets.append((start, start + len(w)))
        pos = start + len(w)
    n = len(words) + 2
    ranking = np.array([np.nan, *word_scores, np.nan])
    candidates = ~np.isnan(ranking)
    encoded = EncodedText(
        ids=list(range(n)),
        offsets=[(0, 0), *offsets, (0, 0)],
        word_ids=[None, *range(len(words)), None],
        tokens=["[CLS]", *words, "[SEP]"],
        truncated=False,
    )
    zeros = np.zeros(n)
    return TextScores(
        encoded, np.array([0.5, 0.5]), zeros, zeros, ranking, candidates, float(np.nanmax(ranking)), ranking
    )


def _picked(scores: TextScores, **kwargs) -> list[str]:
    return [TEXT[p.start : p.end] for p in select_words(scores, [], **kwargs)]


#          i    watched this 3d   movie and   it    was  fun
SCORES = [0.2, 0.5, 0.3, 1.0, 0.4, -0.1, 0.05, 0.0, 0.9]


def test_top_words_best_first():
    assert _picked(_scores(SCORES), k=2) == ["3d", "fun"]


def test_excluded_words_are_skipped():
    s = _scores(SCORES)
    excluded = [(TEXT.index("3d"), TEXT.index("3d") + 2)]
    assert [TEXT[p.start : p.end] for p in select_words(s, excluded, 1)] == ["fun"]


def test_span_grows_over_neighbours_above_the_ratio_and_stops_at_the_first_below():
    s = _scores(SCORES)
    # neighbours >= 0.15 x 1.0: "i watched this 3d movie"; "and" (-0.1) stops the run on the right
    assert _picked(s, k=1, span_ratio=0.15) == ["i watched this 3d movie"]
    # >= 0.35: "movie" (0.4) joins but "this" (0.3) stops the left side
    assert _picked(s, k=1, span_ratio=0.35) == ["3d movie"]
    assert _picked(s, k=1, span_ratio=1.0) == ["3d"]


def test_span_is_capped_and_words_are_not_picked_twice():
    s = _scores(SCORES)
    assert _picked(s, k=1, span_ratio=0.15, max_span_words=2) == ["this 3d"]  # left side first
    # the second pick cannot reuse words of the first span: "fun" stands alone
    assert _picked(s, k=2, span_ratio=0.15) == ["i watched this 3d movie", "fun"]
