"""Attention summed during the forward (`xgraad-sdpa`) gives what `output_attentions` gives, leaves the
model as it was, and changes nothing for other callers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stream_guard import attention_sums
from stream_guard.attention_sums import (
    STREAMED,
    additive_bias,
    attention_received,
    summed_attention,
    supports_streaming,
)
from stream_guard.attribution import attribute
from stream_guard.defender import Defender
from stream_guard.encoding import encode_texts, pad_batch
from stream_guard.loading import load_classifier
from tests.stream_guard.conftest import ARCHITECTURES

TEXTS = ["the film is a charming, funny ride cf", "good!", "an utterly tedious mess , with xyzzy moments"]


def _batch(classifier):
    defender = Defender(classifier)
    encoded = encode_texts(classifier.tokenizer, TEXTS, classifier.max_length)
    ids, mask = pad_batch(encoded, classifier.tokenizer.pad_token_id or 0, classifier.device)
    return ids, mask, defender.tables.candidates(ids)


def test_attention_received_is_the_sum_over_heads_and_real_rows():
    torch.manual_seed(0)
    probs = torch.rand(2, 3, 5, 5)
    rows = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float32)
    expected = torch.einsum("bi,bhij->bj", rows, probs)
    assert torch.allclose(attention_received(probs, rows), expected, atol=1e-6)
    half = attention_received(probs.to(torch.bfloat16), rows)
    assert half.dtype == torch.float32


def test_additive_bias_accepts_every_mask_format():
    assert additive_bias(None, torch.float32) is None
    bias = additive_bias(torch.tensor([[True, False]]), torch.float32)
    assert bias[0, 0] == 0 and bias[0, 1] == torch.finfo(torch.float32).min
    additive = torch.tensor([[0.0, -5.0]])
    assert torch.equal(additive_bias(additive, torch.float32), additive)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_streamed_equals_output_attentions_path(arch, tiny_model_dir):
    classifier = load_classifier(tiny_model_dir(arch), device="cpu")
    ids, mask, cand = _batch(classifier)
    streamed = attribute(classifier.model, ids, mask, cand, stream_attention=True)
    eager = attribute(classifier.model, ids, mask, cand, stream_attention=False)
    assert classifier.model.config._attn_implementation == "eager"  # switched back
    for field in ("logits", "attention", "gradient"):
        a, b = getattr(streamed, field).numpy(), getattr(eager, field).numpy()
        assert np.abs(a - b).max() <= 1e-5 * max(np.abs(b).max(), 1.0), field
    assert torch.allclose(streamed.anomaly, eager.anomaly, rtol=1e-4, atol=1e-6)
    assert supports_streaming(classifier.model) == (arch != "deberta-v2")


def test_streaming_counts_every_layer_and_chunks_alike(tiny_bert, monkeypatch):
    ids, mask, _ = _batch(tiny_bert)
    model = tiny_bert.model
    embeds = model.get_input_embeddings()(ids)
    with torch.no_grad(), summed_attention(model, mask) as whole:
        model(inputs_embeds=embeds, attention_mask=mask)
    monkeypatch.setattr(attention_sums, "CHUNK_BYTES", 1)  # one head at a time
    with torch.no_grad(), summed_attention(model, mask) as chunked:
        model(inputs_embeds=embeds, attention_mask=mask)
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads
    assert whole.layers == chunked.layers == layers and whole.heads == layers * heads
    assert torch.allclose(whole.mean(), chunked.mean(), atol=1e-6)
    # padding keys get no attention, real tokens all get some
    assert (whole.mean()[mask == 0] < 1e-6).all() and (whole.mean()[mask == 1] > 0).all()


def test_other_callers_see_plain_eager_attention_while_switched(tiny_bert):
    model = tiny_bert.model
    ids, mask, _ = _batch(tiny_bert)
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        model.set_attn_implementation(STREAMED)  # as during a summed_attention block
        try:
            during = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        finally:
            model.set_attn_implementation("eager")
    assert torch.allclose(before.logits, during.logits, atol=1e-6)
    for a, b in zip(before.attentions, during.attentions, strict=True):
        assert b is not None and torch.allclose(a, b, atol=1e-6)


def test_autocast_keeps_float32_scores(tiny_bert):
    ids, mask, cand = _batch(tiny_bert)
    full = attribute(tiny_bert.model, ids, mask, cand)
    half = attribute(tiny_bert.model, ids, mask, cand, autocast_dtype=torch.bfloat16)
    for field in ("attention", "gradient", "score", "anomaly", "logits"):
        assert getattr(half, field).dtype == torch.float32
    assert torch.allclose(half.attention, full.attention, rtol=0.05, atol=0.05)
    assert torch.equal(half.candidates, full.candidates)


def test_default_streams_long_batches_only(tiny_bert, monkeypatch):
    from stream_guard import attribution

    calls = []
    add = attention_sums.AttentionCollector.add
    monkeypatch.setattr(
        attention_sums.AttentionCollector, "add", lambda self, *a: (calls.append(1), add(self, *a))[1]
    )
    ids, mask, cand = _batch(tiny_bert)
    assert ids.shape[1] < attribution.STREAM_MIN_LENGTH
    short = attribute(tiny_bert.model, ids, mask, cand)
    assert calls == []  # short: the output_attentions path
    monkeypatch.setattr(attribution, "STREAM_MIN_LENGTH", ids.shape[1])
    streamed = attribute(tiny_bert.model, ids, mask, cand)
    assert len(calls) == tiny_bert.model.config.num_hidden_layers
    assert torch.allclose(short.attention, streamed.attention, atol=1e-6)
