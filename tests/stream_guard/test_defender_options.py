"""Defender options beyond the paper: word aggregation, normalization, confirmation, round rules."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from stream_guard.defender import Defender
from stream_guard.settings import DefenderSettings

TEXTS = [
    "the film is charming cfz and funny",
    "a dull and tedious mess of a movie",
    "one two three four five six seven eight",
    "fine",
]


def test_judge_scores_on_precomputed_scores_equals_judge(tiny_bert):
    defender = Defender(tiny_bert, DefenderSettings(threshold=-1.0))
    direct = defender.judge(TEXTS)
    cached = defender.judge_scores(TEXTS, defender.score(TEXTS), [str(i) for i in range(len(TEXTS))])
    assert [v.to_dict() for v in cached] == [v.to_dict() for v in direct]


@pytest.mark.parametrize("aggregation", ["token", "word_sum", "word_max"])
@pytest.mark.parametrize("normalization", ["none", "zscore", "length"])
def test_rescore_matches_scoring_with_the_settings(tiny_bert, aggregation, normalization):
    settings = DefenderSettings(word_aggregation=aggregation, score_normalization=normalization)
    paper = Defender(tiny_bert, DefenderSettings.paper()).score(TEXTS)
    other = Defender(tiny_bert, settings)
    direct = other.score(TEXTS)
    for cached, fresh in zip(paper, direct, strict=True):
        again = other.rescore(cached)
        assert again.anomaly == pytest.approx(fresh.anomaly, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(again.ranking, fresh.ranking, rtol=1e-5, atol=1e-6)


def test_verdict_top_token_holds_the_normalised_sentence_score(tiny_bert):
    settings = DefenderSettings(
        threshold=-100.0, word_aggregation="word_sum", score_normalization="zscore", confirm=False
    )
    for v in Defender(tiny_bert, settings).judge(TEXTS[:3]):
        top = v.top_token()
        assert top is not None and top.decision_score == pytest.approx(v.anomaly_score)
        assert all((t.score is None) == (t.decision_score is None) for t in v.tokens)
        # the neutralized word is the top token's whole word
        (word,) = v.suspicious_words
        assert word.start <= top.start < word.end


def test_word_sum_ranks_a_split_word_by_the_sum_of_its_pieces(tiny_bert):
    settings = DefenderSettings(word_aggregation="word_sum", score_normalization="none")
    defender = Defender(tiny_bert, settings)
    (s,) = defender.score([TEXTS[0]])
    pieces = [j for j, w in enumerate(s.encoded.word_ids) if w == s.encoded.word_ids[5]]
    assert len(pieces) >= 2  # "cfz" is split by the tiny vocabulary as by the backbone's
    assert all(s.ranking[j] == pytest.approx(np.nansum(s.score[pieces])) for j in pieces)


def test_confirm_keeps_only_flags_whose_neutralization_moved_the_prediction(tiny_bert):
    plain = Defender(tiny_bert, DefenderSettings(threshold=-100.0, confirm=False)).judge(TEXTS)
    confirming = Defender(tiny_bert, DefenderSettings(threshold=-100.0, confirm=True)).judge(TEXTS)
    assert all(v.flagged for v in plain)
    for p, c in zip(plain, confirming, strict=True):
        assert c.flagged == p.label_changed
        if c.flagged:
            assert c.final_label == p.final_label and c.neutralized_text == p.neutralized_text
        else:
            assert c.final_label == c.label and c.neutralized_text is None and not c.suspicious_words


def test_rounds_until_the_label_changes(tiny_bert):
    settings = DefenderSettings(threshold=-100.0, max_rounds=3, continue_while="unchanged", confirm=False)
    for v in Defender(tiny_bert, settings).judge(TEXTS[:3]):
        rounds = len(v.suspicious_words)
        assert 1 <= rounds <= 3
        if rounds < 3:  # stopped early: only because the prediction moved
            assert v.final_label != v.label


def test_paper_settings_are_the_paper_whatever_the_defaults():
    paper = DefenderSettings.paper(max_length=64)
    assert (paper.strategy, paper.words_per_round, paper.max_rounds) == ("noise", 1, 1)
    assert (paper.score_normalization, paper.word_aggregation, paper.confirm) == ("none", "token", False)
    assert paper.max_length == 64
    assert DefenderSettings.paper(strategy="delete").strategy == "delete"  # overrides win


def test_spans_are_on_by_default_and_none_turns_them_off(monkeypatch):
    assert DefenderSettings().span_ratio == 0.01  # chosen on validation splits (docs/lab/choice.md)
    assert DefenderSettings.paper().span_ratio is None
    for off in ("none", "Off", ""):
        monkeypatch.setenv("STREAM_GUARD_SPAN_RATIO", off)
        assert DefenderSettings().span_ratio is None
    monkeypatch.setenv("STREAM_GUARD_SPAN_RATIO", "0.2")
    assert DefenderSettings().span_ratio == 0.2
    for bad in ("0", "1.5", "wide"):
        monkeypatch.setenv("STREAM_GUARD_SPAN_RATIO", bad)
        with pytest.raises(ValidationError):
            DefenderSettings()


def test_span_ratio_rewrites_a_run_of_words_around_the_top_word(tiny_bert):
    base = Defender(tiny_bert, DefenderSettings(threshold=-100.0, confirm=False, span_ratio=None)).judge(
        TEXTS[:3]
    )
    wide = DefenderSettings(threshold=-100.0, confirm=False, span_ratio=1e-6)
    grown = Defender(tiny_bert, wide).judge(TEXTS[:3])
    widened = 0
    for b, g in zip(base, grown, strict=True):
        (top,), (span,) = b.suspicious_words, g.suspicious_words
        assert span.start <= top.start and top.end <= span.end  # the top word, and maybe neighbours
        assert g.text[span.start : span.end] == span.word
        widened += span.end - span.start > top.end - top.start
    assert widened >= 1  # some neighbour scored above ~0 in these texts
