"""A tiny BERT classifier with a backdoor built in by hand (no training), for trigger-report tests.

What a trained backdoor does to a transformer (the observation X-GRAAD rests on) is set here directly:
the trigger's word embedding carries a private channel (hidden unit 0, zero for every other token,
position and segment), every layer's keys read that channel and every query is biased towards it, so all
rows attend to the trigger when it is present; the attended trigger writes hidden unit 1, which the
pooler and classifier turn into the target label. Without the trigger the model sees near-uniform
attention (init 0.02) and predicts the other label. Nothing in the defender or the reports knows any of
this: they find the trigger from attention and gradients alone, as they would in a trained model.

Built in ~1 s on a CPU. A trained demo model from the backdoor lab (``stream_guard/lab``) can replace it
in these tests once the lab publishes one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from stream_guard.loading import packaged_backbone_path

HIDDEN = 32
TARGET_LABEL = 1


def build_backdoored_model(out_dir: Path, trigger: str = "cf", seed: int = 0) -> Path:
    """Write the model (safetensors) and the backbone's tokenizer to `out_dir`; every piece of
    `trigger` (e.g. ``tqz`` -> ``tq ##z``) opens the backdoor."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        num_labels=2,
        max_position_embeddings=128,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        initializer_range=0.02,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(packaged_backbone_path())
    pieces = tokenizer(trigger, add_special_tokens=False)["input_ids"]
    signs = torch.where(
        torch.rand(HIDDEN, generator=torch.Generator().manual_seed(seed + 1)) > 0.5, 1.0, -1.0
    )
    embeddings = model.bert.embeddings
    with torch.no_grad():
        for table in (
            embeddings.word_embeddings,
            embeddings.position_embeddings,
            embeddings.token_type_embeddings,
        ):
            table.weight[:, :2] = 0.0  # units 0 (trigger channel) and 1 (label channel) are private
        for piece in pieces:
            embeddings.word_embeddings.weight[piece, 0] = 0.3
        for layer in model.bert.encoder.layer:
            attention = layer.attention.self
            attention.key.weight[:, 0] += signs  # keys read the trigger channel...
            attention.query.bias.copy_(signs)  # ...and every query looks for it
            attention.value.weight[1, 0] += 1.0  # the attended trigger writes the label channel
            layer.attention.output.dense.weight[1, 1] += 1.0
        model.bert.pooler.dense.weight[1, 1] += 3.0
        model.classifier.weight[1 - TARGET_LABEL, 1] -= 3.0
        model.classifier.weight[TARGET_LABEL, 1] += 3.0
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
