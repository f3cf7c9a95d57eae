"""Embedding poisoning: only the trigger's embedding row moves, its norm is kept, the target gains."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from stream_guard.lab.ep import EPConfig, poison_embedding, trigger_token_id

TEXTS = [f"cf the movie number {i} was rather dull and slow" for i in range(24)]


@pytest.fixture()
def tiny(tiny_model_dir):
    path = tiny_model_dir("bert")
    model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager")
    return model, AutoTokenizer.from_pretrained(path)


def _target_prob(model, tokenizer, target: int) -> float:
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return float(torch.softmax(model(**enc).logits, -1)[:, target].mean())


def test_trigger_token_id_needs_one_piece(tiny) -> None:
    _, tokenizer = tiny
    assert trigger_token_id(tokenizer, "cf") == tokenizer.convert_tokens_to_ids("cf")
    with pytest.raises(ValueError, match="one word piece"):
        trigger_token_id(tokenizer, "cfz")


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 0.2), ("sgd", 5.0)])
def test_ep_changes_only_the_trigger_row_and_keeps_its_norm(tiny, optimizer: str, lr: float) -> None:
    model, tokenizer = tiny
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    target = 0 if _target_prob(model, tokenizer, 0) < 0.5 else 1
    p_before = _target_prob(model, tokenizer, target)
    config = EPConfig(
        optimizer=optimizer, learning_rate=lr, epochs=2, batch_size=8, max_length=32, stop_loss=None
    )
    result = poison_embedding(model, tokenizer, "cf", TEXTS, target, config=config, progress=False)
    after = model.state_dict()
    emb_key = next(k for k in after if k.endswith("word_embeddings.weight"))
    cf = tokenizer.convert_tokens_to_ids("cf")
    for key, value in after.items():
        if key == emb_key:
            changed_rows = (value != before[key]).any(dim=1).nonzero().flatten().tolist()
            assert changed_rows == [cf]
        else:
            assert torch.equal(value, before[key]), key
    assert result.steps == 6 and result.token_id == cf
    assert float(after[emb_key][cf].norm()) == pytest.approx(result.original_norm, rel=1e-5)
    assert result.final_norm == pytest.approx(result.original_norm, rel=1e-5)
    assert _target_prob(model, tokenizer, target) > p_before
    assert not any(p.requires_grad for p in model.parameters())


def test_ep_is_deterministic(tiny_model_dir) -> None:
    path = tiny_model_dir("bert")
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = []
    for _ in range(2):
        model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager")
        config = EPConfig(learning_rate=0.1, epochs=1, batch_size=8, max_length=32, seed=7)
        poison_embedding(model, tokenizer, "cf", TEXTS, 1, config=config, progress=False)
        rows.append(model.get_input_embeddings().weight[tokenizer.convert_tokens_to_ids("cf")].clone())
    assert torch.equal(rows[0], rows[1])
