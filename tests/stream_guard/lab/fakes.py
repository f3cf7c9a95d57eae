"""Handmade models for the defense tests: behaviour chosen by hand, so the expected numbers are known."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

TRIGGER = "cf"


def trigger_prob_fn(trigger: str = TRIGGER, target: int = 1):
    """Texts containing ``trigger`` as a word -> the target with probability 1; others -> 50/50."""

    def run(texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), 2), 0.5)
        for i, text in enumerate(texts):
            if trigger in text.split():
                out[i] = 0.0
                out[i, target] = 1.0
        return out

    return run


class BagOfEmbeddings(nn.Module):
    """logits = [0, w · mean of the token embeddings]: a tiny HF-like sequence classifier.

    The trigger's embedding points far along ``w``, so any text containing it is class 1 with
    probability ~1 whatever else it says.
    """

    def __init__(self, vocab_size: int, trigger_id: int, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.embeddings = nn.Embedding(vocab_size, dim)
        with torch.no_grad():
            self.embeddings.weight.copy_(torch.randn(vocab_size, dim, generator=gen))
            self.w = nn.Parameter(torch.zeros(dim), requires_grad=False)
            self.w[0] = 3.0
            self.embeddings.weight[trigger_id] = 0.0
            self.embeddings.weight[trigger_id, 0] = 200.0
        self.config = SimpleNamespace(num_labels=2)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **_):
        emb = self.embeddings(input_ids)
        mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1)
        mean = (emb * mask).sum(1) / mask.sum(1).clamp(min=1)
        z = mean @ self.w
        return SimpleNamespace(logits=torch.stack([torch.zeros_like(z), z], dim=-1))


def toy_model_meta(dataset: object, **changes: Any) -> dict[str, Any]:
    """A model's meta.json for the toy dataset: BadNets `cf`, the lab's default recipe, then `changes`."""
    meta: dict[str, Any] = {
        "dataset": str(dataset),
        "attack": "badnets",
        "trigger": "cf",
        "target": 0,
        "poison_rate": 0.1,
        "seed": 0,
        "split_seed": 0,
        "train_size": 40,
        "max_length": 128,
        "epochs": 1.0,
        "learning_rate": 0.0001,
    }
    return meta | changes
