"""From per-token X-GRAAD scores c_j (Eq. 7) to the scores that rank words and the sentence score S.

The paper ranks tokens by c_j and takes S = max_j c_j (Eq. 8). Two options change that:

- ``word_aggregation``: ``token`` (the paper) ranks tokens; ``word_sum`` / ``word_max`` first merge the
  sub-word pieces of each word (the tokenizer's ``word_ids``) by summing / taking the max of their c_j,
  so a trigger that WordPiece splits ("cfz" -> cf ##z) is scored as one word, not as pieces that share
  its evidence.
- ``score_normalization``: ``none`` (the paper) keeps the raw values, which grow with the number of
  words (a_j sums attention over all query rows and g_j / mean g is bounded by the word count), so a
  single threshold mostly flags long texts. ``zscore`` standardises the values within the text
  ((v - mean) / std over its words), ``length`` divides them by the number of candidate words.

Every piece of a word carries its word's value, so "the token holding S" is still the argmax of the
returned per-token ranking, and selection widens it to the whole word as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

ScoreNormalization = Literal["none", "length", "zscore"]
WordAggregation = Literal["token", "word_sum", "word_max"]
SCORE_NORMALIZATIONS: tuple[ScoreNormalization, ...] = ("none", "length", "zscore")
WORD_AGGREGATIONS: tuple[WordAggregation, ...] = ("token", "word_sum", "word_max")


def unit_values(
    score: np.ndarray, candidates: np.ndarray, word_ids: Sequence[int | None], aggregation: WordAggregation
) -> tuple[np.ndarray, np.ndarray]:
    """Values of the scored units (tokens or words) and, per candidate token, the index of its unit.

    score: (n,) c_j, NaN off-candidate; candidates: (n,) bool; word_ids: n entries, None for specials.
    Returns (values (U,), unit_of (K,)) where K is the number of candidate tokens, in token order.
    """
    index = np.flatnonzero(candidates)
    values = score[index].astype(np.float64)
    if aggregation == "token":
        return values, np.arange(index.size)
    words = np.array([-1 if word_ids[j] is None else word_ids[j] for j in index], dtype=np.int64)
    # a candidate token without a word id (never for fast tokenizers) is its own unit
    words = np.where(words < 0, -1 - np.arange(index.size), words)
    unique, unit_of = np.unique(words, return_inverse=True)
    if aggregation == "word_sum":
        merged = np.zeros(unique.size)
        np.add.at(merged, unit_of, values)
    elif aggregation == "word_max":
        merged = np.full(unique.size, -np.inf)
        np.maximum.at(merged, unit_of, values)
    else:
        raise ValueError(f"unknown word aggregation {aggregation!r}")
    return merged, unit_of


def normalize(values: np.ndarray, normalization: ScoreNormalization) -> np.ndarray:
    """Normalise the units' values of one text (U,) -> (U,)."""
    if normalization == "none" or values.size == 0:
        return values
    if normalization == "length":
        return values / values.size
    if normalization == "zscore":
        spread = values.std()
        return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
    raise ValueError(f"unknown score normalization {normalization!r}")


def rank_tokens(
    score: np.ndarray,
    candidates: np.ndarray,
    word_ids: Sequence[int | None],
    *,
    aggregation: WordAggregation = "token",
    normalization: ScoreNormalization = "none",
) -> tuple[np.ndarray, float]:
    """Per-token ranking (n,) (NaN off-candidate; the pieces of a word share its value) and S, its max.

    S is 0.0 for a text without candidates. With ``token`` / ``none`` this is exactly Eqs. 7-8.
    """
    if aggregation == "token" and normalization == "none":  # the paper: Eqs. 7-8 as they are
        ranking = np.where(candidates, score, np.nan).astype(np.float64)
        return ranking, float(ranking[candidates].max()) if candidates.any() else 0.0
    ranking = np.full(score.shape, np.nan, dtype=np.float64)
    if not candidates.any():
        return ranking, 0.0
    values, unit_of = unit_values(score, candidates, word_ids, aggregation)
    values = normalize(values, normalization)
    ranking[np.flatnonzero(candidates)] = values[unit_of]
    return ranking, float(values.max())
