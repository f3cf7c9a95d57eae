"""Defender decisions: flag only above the threshold, neutralize the top word, explain everything."""

from __future__ import annotations

import numpy as np
import pytest

from stream_guard.defender import Defender
from stream_guard.errors import InvalidTextError
from stream_guard.settings import DefenderSettings
from stream_guard.threshold import Threshold

TEXTS = ["the film is charming cf and funny", "a dull and tedious mess", "fine"]


def test_without_threshold_nothing_is_flagged(tiny_bert):
    verdicts = Defender(tiny_bert).judge(TEXTS, ["a", "b", "c"])
    assert [v.id for v in verdicts] == ["a", "b", "c"]
    assert not any(v.flagged for v in verdicts)
    assert all(v.final_label == v.label and v.neutralized_text is None for v in verdicts)


def test_flags_exactly_the_texts_above_threshold(tiny_bert):
    defender = Defender(tiny_bert, DefenderSettings.paper())
    scores = [v.anomaly_score for v in defender.judge(TEXTS)]
    cut = sorted(scores)[1]  # between the lowest two and the highest
    defender.set_threshold(Threshold.static(cut))
    verdicts = defender.judge(TEXTS)
    assert [v.flagged for v in verdicts] == [s > cut for s in scores]
    for v in verdicts:
        assert v.threshold == cut
        assert v.threshold_version == f"static:{cut:g}"


def test_flagged_verdict_explains_itself(tiny_bert):
    defender = Defender(tiny_bert, DefenderSettings.paper(threshold=-1.0, strategy="delete"))
    (v,) = defender.judge([TEXTS[0]], ["m1"])
    assert v.flagged
    top = v.top_token()
    assert top is not None and top.score == pytest.approx(v.anomaly_score)
    assert top.decision_score == top.score  # paper mode: the decision score is c_j itself
    (word,) = v.suspicious_words
    assert v.text[word.start : word.end] == word.word
    assert top.start is not None and word.start <= top.start < word.end  # the top token's word
    assert word.word not in v.neutralized_text.split()
    assert v.neutralized_label is not None and v.final_label == v.neutralized_label
    assert v.neutralized_anomaly_score is None  # the rewrite was classified, not scored (the default)


def test_rescoring_the_rewrite_with_attributions_changes_no_decision(tiny_bert):
    """The final rewrite's plain forward gives the label and probabilities X-GRAAD's forward gives;
    `rescore_attributions` adds the rewrite's anomaly score to the verdict."""
    judged = {}
    for rescore in (False, True):
        settings = DefenderSettings(threshold=-100.0, confirm=False, rescore_attributions=rescore)
        judged[rescore] = Defender(tiny_bert, settings).judge(TEXTS)
    for plain, scored in zip(judged[False], judged[True], strict=True):
        assert plain.flagged and scored.flagged
        assert plain.neutralized_text == scored.neutralized_text
        assert plain.neutralized_label == scored.neutralized_label
        np.testing.assert_allclose(
            plain.neutralized_probabilities, scored.neutralized_probabilities, atol=1e-5
        )
        assert plain.neutralized_anomaly_score is None
        assert scored.neutralized_anomaly_score is not None and np.isfinite(scored.neutralized_anomaly_score)


def test_rounds_continue_while_anomalous_and_map_words_to_original_text(tiny_bert):
    text = "one two three four five six seven"
    defender = Defender(tiny_bert, DefenderSettings.paper(threshold=-1.0, strategy="delete", max_rounds=3))
    (v,) = defender.judge([text])
    assert len(v.suspicious_words) == 3
    assert [w.iteration for w in v.suspicious_words] == [0, 1, 2]
    for w in v.suspicious_words:
        assert text[w.start : w.end] == w.word  # offsets refer to the original text
    assert len(v.neutralized_text.split()) == 4


def test_verdicts_are_deterministic(tiny_bert):
    settings = DefenderSettings(threshold=-1.0, strategy="noise", seed=7)
    first = Defender(tiny_bert, settings).judge(TEXTS, ["a", "b", "c"])
    second = Defender(tiny_bert, settings).judge(TEXTS, ["a", "b", "c"])
    assert [v.to_dict() for v in first] == [v.to_dict() for v in second]


def test_tokens_in_input_order_with_offsets(tiny_bert):
    (v,) = Defender(tiny_bert).judge(["Hello, wörld!"])
    assert v.tokens[0].token == "[CLS]" and v.tokens[0].start is None and v.tokens[0].score is None
    assert v.tokens[-1].token == "[SEP]"
    words = [(t.token, v.text[t.start : t.end]) for t in v.tokens if t.start is not None]
    assert words[0] == ("hello", "Hello")
    punct = [t for t in v.tokens if t.token in {",", "!"}]
    assert punct and all(not t.candidate and t.score is None for t in punct)


def test_tokens_only_for_flagged_when_asked(tiny_bert):
    defender = Defender(tiny_bert)
    scores = [v.anomaly_score for v in defender.judge(TEXTS)]
    defender.set_threshold(Threshold.static(max(scores) - 1e-6))
    verdicts = defender.judge(TEXTS, tokens="flagged")
    assert [bool(v.tokens) for v in verdicts] == [v.flagged for v in verdicts]


def test_length_buckets_pick_threshold_by_token_count(tiny_bert):
    threshold = Threshold(value=-1.0, version="v2", by_length=((4, 1e9),))
    defender = Defender(tiny_bert, DefenderSettings.paper(), threshold=threshold)
    short, long = defender.judge(["fine film", "a long and rather tedious film about nothing"])
    assert short.threshold == 1e9 and not short.flagged
    assert long.threshold == -1.0 and long.flagged and long.threshold_version == "v2"


def test_invalid_text_raises_clear_error(tiny_bert):
    with pytest.raises(InvalidTextError, match="empty"):
        Defender(tiny_bert).judge(["ok", ""])


def test_threshold_rejects_non_finite_and_unsorted():
    with pytest.raises(ValueError):
        Threshold(value=float("nan"))
    with pytest.raises(ValueError):
        Threshold(value=1.0, by_length=((10, 1.0), (5, 2.0)))


def test_confidence_gate_keeps_less_confident_predictions_unflagged(tiny_bert):
    """A text above tau is flagged only if its prediction is at least `min_confidence` sure; every
    verdict names the gate it was judged with."""
    settings = DefenderSettings(confirm=False)
    plain = Defender(tiny_bert, settings, Threshold(value=-100.0, version="v")).judge(TEXTS)
    assert all(v.flagged for v in plain)
    cut = float(np.median([max(v.probabilities) for v in plain]))
    gated = Defender(tiny_bert, settings, Threshold(value=-100.0, version="g", min_confidence=cut))
    verdicts = gated.judge(TEXTS)
    for before, v in zip(plain, verdicts, strict=True):
        assert v.min_confidence == cut
        assert v.flagged == (max(v.probabilities) >= cut)
        if not v.flagged:  # a clean verdict: its own label, nothing rewritten
            assert v.final_label == v.label and v.neutralized_text is None
        else:
            assert v.neutralized_text == before.neutralized_text
    assert any(v.flagged for v in verdicts) and not all(v.flagged for v in verdicts)
    with pytest.raises(ValueError, match="min_confidence"):
        Threshold(value=0.0, min_confidence=1.2)
