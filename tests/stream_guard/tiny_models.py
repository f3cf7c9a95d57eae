"""Tiny random sequence classifiers of every supported architecture, built from configs (no download).

All share the packaged backbone's WordPiece tokenizer: the models only see token ids, so a tokenizer of
another family is not needed to exercise their attention and embedding code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AlbertConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    PretrainedConfig,
    RobertaConfig,
)

from stream_guard.loading import packaged_backbone_path

VOCAB = 30522
# a wide init makes attention far from uniform, so the comparisons below test something
COMMON = {"vocab_size": VOCAB, "num_labels": 2, "max_position_embeddings": 128, "initializer_range": 0.3}


def tiny_configs() -> dict[str, PretrainedConfig]:
    layers = {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "hidden_size": 32}
    return {
        "bert": BertConfig(**COMMON, **layers),
        "distilbert": DistilBertConfig(
            vocab_size=VOCAB,
            num_labels=2,
            max_position_embeddings=128,
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=64,
            initializer_range=0.3,
        ),
        "albert": AlbertConfig(**COMMON, **layers, embedding_size=16),
        "roberta": RobertaConfig(**{**COMMON, "max_position_embeddings": 130}, **layers, pad_token_id=0),
        "deberta-v2": DebertaV2Config(
            **COMMON,
            **layers,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
            max_relative_positions=64,
        ),
        "electra": ElectraConfig(**COMMON, **layers, embedding_size=16),
    }


def build_tiny_model(arch: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a random tiny `arch` classifier (safetensors) plus the backbone's tokenizer to `out_dir`."""
    torch.manual_seed(seed)
    config = tiny_configs()[arch]
    config.id2label = {0: "negative", 1: "positive"}
    config.label2id = {"negative": 0, "positive": 1}
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(packaged_backbone_path()).save_pretrained(out_dir)
    return out_dir
