"""Plain batched inference for the lab's defenses: texts -> class probabilities, no attribution.

A :data:`ProbabilityFn` maps texts to an ``(N, C)`` array of probabilities; the baselines (STRIP) are
written against it, so tests can hand them a fake model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

ProbabilityFn = Callable[[Sequence[str]], np.ndarray]


@torch.inference_mode()
def predict_proba(
    model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 64
) -> np.ndarray:
    """(N, C) softmax probabilities, batches of similar length (input order kept)."""
    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: np.ndarray | None = None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            ).to(device)
            probs = torch.softmax(model(**enc).logits.float(), dim=-1).cpu().numpy()
            if out is None:
                out = np.zeros((len(texts), probs.shape[1]), dtype=np.float64)
            out[idx] = probs
    finally:
        model.train(was_training)
    if out is None:
        return np.zeros((0, int(getattr(model.config, "num_labels", 2))), dtype=np.float64)
    return out


def probability_fn(model: Any, tokenizer: Any, *, max_length: int, batch_size: int = 64) -> ProbabilityFn:
    """A :data:`ProbabilityFn` bound to one model."""

    def run(texts: Sequence[str]) -> np.ndarray:
        return predict_proba(model, tokenizer, texts, max_length=max_length, batch_size=batch_size)

    return run
