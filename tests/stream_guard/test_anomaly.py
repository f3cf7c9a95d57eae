"""Word aggregation and normalization of X-GRAAD token scores (stream_guard.anomaly)."""

from __future__ import annotations

import numpy as np
import pytest

from stream_guard.anomaly import normalize, rank_tokens

NAN = np.nan
# [CLS] cf ##z film is good [SEP]: word ids None, 0, 0, 1, 2, 3, None
SCORE = np.array([NAN, 2.0, 3.0, 1.0, -1.0, 4.0, NAN])
CANDIDATES = np.array([False, True, True, True, True, True, False])
WORD_IDS = [None, 0, 0, 1, 2, 3, None]


def test_paper_mode_is_max_token_score():
    ranking, anomaly = rank_tokens(SCORE, CANDIDATES, WORD_IDS)
    assert anomaly == 4.0
    assert np.isnan(ranking[0]) and np.isnan(ranking[-1])
    np.testing.assert_array_equal(ranking[1:-1], SCORE[1:-1])


def test_word_sum_merges_pieces_and_shares_the_value():
    ranking, anomaly = rank_tokens(SCORE, CANDIDATES, WORD_IDS, aggregation="word_sum")
    assert anomaly == 5.0  # cf + ##z outranks "good"
    assert ranking[1] == ranking[2] == 5.0
    assert ranking[5] == 4.0


def test_word_max_takes_the_best_piece():
    ranking, anomaly = rank_tokens(SCORE, CANDIDATES, WORD_IDS, aggregation="word_max")
    assert anomaly == 4.0
    assert ranking[1] == ranking[2] == 3.0


def test_zscore_is_standardised_over_words_and_scale_free():
    _, words = rank_tokens(SCORE, CANDIDATES, WORD_IDS, aggregation="word_sum", normalization="zscore")
    values = np.array([5.0, 1.0, -1.0, 4.0])
    assert words == pytest.approx((5.0 - values.mean()) / values.std())
    _, scaled = rank_tokens(SCORE * 10, CANDIDATES, WORD_IDS, aggregation="word_sum", normalization="zscore")
    assert scaled == pytest.approx(words)


def test_length_divides_by_the_number_of_units():
    _, anomaly = rank_tokens(SCORE, CANDIDATES, WORD_IDS, normalization="length")
    assert anomaly == pytest.approx(4.0 / 5)


def test_no_candidates_scores_zero_and_constant_values_zscore_to_zero():
    ranking, anomaly = rank_tokens(SCORE, np.zeros(7, dtype=bool), WORD_IDS, normalization="zscore")
    assert anomaly == 0.0 and np.isnan(ranking).all()
    np.testing.assert_array_equal(normalize(np.array([2.0, 2.0]), "zscore"), [0.0, 0.0])


def test_unknown_options_raise():
    with pytest.raises(ValueError):
        normalize(np.array([1.0]), "bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rank_tokens(SCORE, CANDIDATES, WORD_IDS, aggregation="bogus")  # type: ignore[arg-type]
