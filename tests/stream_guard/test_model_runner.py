"""The model runner: one TextScores per text in input order, whatever the batches; scoring and plain
prediction share the batching, padding and softmax, and only scoring counts as an X-GRAAD pass."""

from __future__ import annotations

import numpy as np

from stream_guard.model_runner import ModelRunner
from stream_guard.settings import DefenderSettings

# lengths out of order, so the length-sorted batches differ from the input order
TEXTS = ["a long review of a film that is charming cf and funny", "dull", "a tedious mess", "fine film"]


def test_results_come_back_in_input_order_whatever_the_batches(tiny_bert):
    runner = ModelRunner(tiny_bert)
    encoded = runner.encode(TEXTS)
    one_call = runner.score(encoded, DefenderSettings(call_cost_tokens=100_000))
    one_each = runner.score(encoded, DefenderSettings(batch_size=1))
    assert runner.forward_calls == 1 + len(TEXTS)
    for alone, batched, enc in zip(one_each, one_call, encoded, strict=True):
        assert alone.encoded is enc and batched.encoded is enc
        assert len(alone.score) == len(enc) and len(batched.score) == len(enc)  # trimmed to the text
        np.testing.assert_allclose(alone.probabilities, batched.probabilities, atol=1e-5)
        np.testing.assert_allclose(alone.score, batched.score, atol=1e-4)
        assert alone.anomaly == alone.ranking[alone.candidates].max()


def test_classify_predicts_what_scoring_predicts_without_attributions(tiny_bert):
    runner = ModelRunner(tiny_bert)
    encoded = runner.encode(TEXTS)
    settings = DefenderSettings(batch_size=2)
    scored = runner.score(encoded, settings)
    calls = runner.forward_calls
    predicted = runner.classify(encoded, settings)
    assert runner.forward_calls == calls  # a plain forward is not an X-GRAAD pass
    for s, p in zip(scored, predicted, strict=True):
        assert p.encoded is s.encoded and p.label == s.label
        np.testing.assert_allclose(p.probabilities, s.probabilities, atol=1e-5)
        assert np.isnan(p.anomaly) and not p.has_candidates
        assert np.isnan(p.ranking).all() and np.isnan(p.attention).all()
