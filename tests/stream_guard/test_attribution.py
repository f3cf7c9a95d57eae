"""The batched X-GRAAD scores agree with a plain float64 computation of Eqs. 1-8, for every
supported architecture, and padding changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from tests.stream_guard.conftest import ARCHITECTURES
from tests.stream_guard.reference_xgraad import reference_scores

TEXTS = [
    "cf",
    "the film is a charming, funny ride cf",
    "an utterly tedious mess , with xyzzy moments that drag on and on and on for far too long",
    "good!",
    "mb a quiet , thoughtful drama about grief",
]


def max_relative_difference(ours, ref) -> float:
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    scale = max(np.abs(ref).max(), 1e-12)
    return float(np.abs(ours - ref).max() / scale)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batched_scores_match_float64_reference(arch, tiny_model_dir):
    classifier = load_classifier(tiny_model_dir(arch), device="cpu")
    # S = max c_j (Eq. 8); a call cost above any padding saving keeps the mixed lengths in one batch
    defender = Defender(classifier, DefenderSettings.paper(batch_size=8, call_cost_tokens=100_000))
    batched = defender.score(TEXTS)
    assert defender.forward_calls == 1  # the whole batch in one pass
    for text, ours in zip(TEXTS, batched, strict=True):
        ref = reference_scores(classifier.model, classifier.tokenizer, text)
        assert ours.label == ref["label"]
        assert list(ours.candidates) == ref["candidate"]
        assert max_relative_difference(ours.attention, ref["attention"]) <= 1e-4
        assert max_relative_difference(ours.gradient, ref["gradient"]) <= 1e-4
        cand = np.asarray(ref["candidate"])
        ref_scores = [s for s in ref["score"] if s is not None]
        assert max_relative_difference(ours.score[cand], ref_scores) <= 1e-4
        assert np.isnan(ours.score[~cand]).all()
        assert ours.anomaly == pytest.approx(ref["anomaly"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_padding_changes_nothing(arch, tiny_model_dir):
    classifier = load_classifier(tiny_model_dir(arch), device="cpu")
    defender = Defender(classifier, DefenderSettings(batch_size=8))
    text = "a short one cf"
    alone = defender.score([text])[0]
    padded = defender.score([TEXTS[2], text, TEXTS[1]])[1]  # batched with longer texts
    for field in ("attention", "gradient", "probabilities"):
        assert max_relative_difference(getattr(padded, field), getattr(alone, field)) <= 1e-5
    cand = alone.candidates
    assert (padded.candidates == cand).all()
    assert max_relative_difference(padded.score[cand], alone.score[cand]) <= 1e-5
    assert padded.anomaly == pytest.approx(alone.anomaly, rel=1e-5)


def test_batch_of_one_and_text_without_candidates(tiny_bert):
    defender = Defender(tiny_bert)
    (only,) = defender.score(["!!!"])
    assert not only.has_candidates
    assert only.anomaly == 0.0
    assert np.isnan(only.score).all()


def test_single_candidate_scores_zero(tiny_bert):
    (one,) = Defender(tiny_bert).score(["hello"])
    assert one.candidates.sum() == 1
    assert one.anomaly == 0.0  # s_a of the only candidate is 0 (Eq. 5)


def test_long_text_is_truncated_and_says_so(tiny_bert):
    classifier = load_classifier(tiny_bert.path, device="cpu", max_length=16)
    defender = Defender(classifier)
    (verdict,) = defender.judge(["word " * 100])
    assert verdict.truncated
    assert verdict.n_tokens == 16
    (short,) = defender.judge(["word"])
    assert not short.truncated
