"""Attention received per token (paper Eqs. 1-2), summed layer by layer while the forward runs.

With `output_attentions=True` an eager model keeps every layer's (B, H, L, L) probabilities for its
backward pass: memory grows with layers x L², and the eager kernels are slower than sdpa's. For models
whose attention goes through transformers' `AttentionInterface` (BERT, RoBERTa, DistilBERT, ALBERT,
ELECTRA, ...), `summed_attention` switches the model, for one forward, to the `xgraad-sdpa` attention:

- the layer's output (the differentiable path, which the backward needs) comes from sdpa, which keeps
  no probability matrix for the backward;
- under `torch.no_grad` the same probabilities, softmax(Q Kᵀ · scale + mask), are recomputed a few
  heads at a time, summed over real query rows and heads into a float32 (B, L) running total, and
  dropped — at most one chunk of one layer is alive at a time.

Without an active collector (another caller of the same model, `output_attentions=True`) the function
computes plain eager attention and returns the probabilities, so the switch never changes what others
see. Models that don't use the interface (DeBERTa-v2) keep the `output_attentions` path.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

STREAMED = "xgraad-sdpa"
CHUNK_BYTES = 64 * 1024 * 1024  # probabilities recomputed at once, per layer

_COLLECTOR: contextvars.ContextVar[AttentionCollector | None] = contextvars.ContextVar(
    "xgraad_attention_collector", default=None
)
_LOCKS: weakref.WeakKeyDictionary[PreTrainedModel, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def attention_received(probabilities: Tensor, rows: Tensor) -> Tensor:
    """Sum over heads and real query rows of one layer's probabilities.

    probabilities: (B, H, L, L), query rows by key columns; rows: (B, L) float32, 1 for real tokens.
    Returns (B, L) float32: Σ_h Σ_i rows[i] · P[h, i, j]. One batched matrix-vector product that reads
    P once (an einsum would broadcast-multiply it into a second (B, H, L, L) tensor first); a
    half-precision P is widened to float32 first.
    """
    batch, heads, length, _ = probabilities.shape
    flat = probabilities.float().reshape(batch, heads * length, length)
    weights = rows.float().repeat(1, heads).unsqueeze(1)  # (B, 1, H·L)
    with torch.autocast(probabilities.device.type, enabled=False):  # float32 sums, even under autocast
        return torch.bmm(weights, flat).squeeze(1)


def additive_bias(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """A mask from any implementation (None, bool True = attend, or additive float) as an additive bias."""
    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill_(~mask, torch.finfo(dtype).min)


class AttentionCollector:
    """Running Σ over layers, heads and real query rows of the attention probabilities: (B, L) float32."""

    def __init__(self, rows: Tensor) -> None:
        self.rows = rows.float()
        self.total = torch.zeros_like(self.rows)
        self.heads = 0
        self.layers = 0
        self._mask: Tensor | None = None
        self._bias: Tensor | None = None

    def _bias_for(self, mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        if mask is not self._mask or (self._bias is not None and self._bias.dtype != dtype):
            self._mask, self._bias = mask, additive_bias(mask, dtype)
        return self._bias

    @torch.no_grad()
    def add(self, query: Tensor, key: Tensor, mask: Tensor | None, scaling: float | None) -> None:
        """query, key: (B, H, L, d) of one layer; mask as the model's mask function made it."""
        batch, heads, length, dim = query.shape
        scale = scaling if scaling is not None else dim**-0.5
        per_head = batch * length * length * 4
        step = max(1, min(heads, CHUNK_BYTES // max(per_head, 1)))
        for start in range(0, heads, step):
            q = query[:, start : start + step] * scale
            scores = torch.matmul(q, key[:, start : start + step].transpose(-1, -2))  # (B, h, L, L)
            bias = self._bias_for(mask, scores.dtype)
            if bias is not None:
                scores += bias
            probabilities = torch.softmax(scores, dim=-1, dtype=torch.float32)
            self.total += attention_received(probabilities, self.rows)
        self.heads += heads
        self.layers += 1

    def mean(self) -> Tensor:
        """(B, L): a_j, Eq. 2, with the mean over layers and heads of Eq. 1."""
        return self.total / max(self.heads, 1)


def _eager(module, query, key, value, mask, scaling, dropout) -> tuple[Tensor, Tensor]:
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scale
    bias = additive_bias(mask, scores.dtype)
    if bias is not None:
        scores = scores + bias
    probabilities = torch.nn.functional.softmax(scores, dim=-1)
    probabilities = torch.nn.functional.dropout(probabilities, p=dropout, training=module.training)
    return torch.matmul(probabilities, value).transpose(1, 2).contiguous(), probabilities


def streamed_attention_forward(
    module: torch.nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[Tensor, Tensor | None]:
    """The `xgraad-sdpa` attention: sdpa output plus the collector's sums; eager without a collector."""
    collector = _COLLECTOR.get()
    if collector is None:
        return _eager(module, query, key, value, attention_mask, scaling, dropout)
    collector.add(query, key, attention_mask, scaling)
    kwargs.setdefault("is_causal", False)  # encoders: never causal, even where the module doesn't say
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
    )


AttentionInterface.register(STREAMED, streamed_attention_forward)
AttentionMaskInterface.register(STREAMED, sdpa_mask)


def supports_streaming(model: PreTrainedModel) -> bool:
    """Whether the model's attention goes through transformers' AttentionInterface."""
    implementation = getattr(model.config, "_attn_implementation", None)
    return bool(getattr(model, "_supports_attention_backend", False)) and implementation in {
        "eager",
        "sdpa",
        STREAMED,
    }


def _lock(model: PreTrainedModel) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(model, threading.Lock())


@contextmanager
def summed_attention(model: PreTrainedModel, attention_mask: Tensor) -> Iterator[AttentionCollector | None]:
    """Run the `with` block's forward with streamed attention sums; yields None where unsupported.

    attention_mask: (B, L) 1 for real tokens. Only the forward belongs in the block (the backward
    calls no attention function). The model is switched back when the block ends. Concurrent
    `summed_attention` blocks on one model take turns; other callers of the model meanwhile get plain
    eager attention (no collector is active in their context).
    """
    if not supports_streaming(model):
        yield None
        return
    with _lock(model):
        previous = model.config._attn_implementation
        collector = AttentionCollector(attention_mask)
        token = _COLLECTOR.set(collector)
        try:
            if previous != STREAMED:
                model.set_attn_implementation(STREAMED)
            yield collector
        finally:
            _COLLECTOR.reset(token)
            if previous != STREAMED:
                model.set_attn_implementation(previous)


def mean_attention_received(attentions: Sequence[Tensor], attention_mask: Tensor) -> Tensor:
    """Eqs. 1-2 from `output_attentions`, one layer at a time in float32.

    attentions: per layer (B, H, L, L) probabilities; attention_mask: (B, L) 1 for real tokens.
    Returns (B, L): a_j = Σ over real query rows i of the layer-and-head mean A[i, j].
    """
    rows = attention_mask.float()
    total = torch.zeros_like(rows)
    heads = 0
    for layer in attentions:
        total += attention_received(layer.detach(), rows)
        heads += layer.shape[1]
    if heads == 0:
        raise RuntimeError("model returned no attentions")
    return total / heads
