"""LWS's trigger inserter: the scores, the soft (training) and hard (test-time) substitutions, its files.

The inserter holds one learnable vector ``q_j`` per token position and, per vocabulary piece, its ``K``
candidate substitutes (:mod:`stream_guard.lab.lws_candidates`). Option ``k`` of token ``w`` at position
``j`` scores ``(e(s_k) - e(w)) . q_j``; keeping the word (option 0) scores 0. In training a Gumbel
softmax over the options mixes their embeddings; at test time each selected word takes its argmax
option, which is a real word, and the text is rewritten at that word's character span only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from stream_guard.lab.lws_candidates import NO_CANDIDATE, replace_spans, substitutable

INSERTER_FILE = "lws_inserter.safetensors"
META_FILE = "lws.json"


@dataclass(frozen=True)
class LwsState:
    """The learned trigger inserter: ``[V, K]`` candidate ids and ``[max_length, d]`` position vectors."""

    candidates: torch.Tensor
    position_vectors: torch.Tensor
    max_substitutions: int | None

    @property
    def max_length(self) -> int:
        return int(self.position_vectors.shape[0])


def candidate_logits(
    ids: torch.Tensor, candidates: torch.Tensor, position_vectors: torch.Tensor, embeddings: torch.Tensor
) -> torch.Tensor:
    """``[B, L, K+1]`` scores of {keep, s_1..s_K} per token: 0 for keep, ``(e(s_k) - e(w)) . q_j`` for a
    candidate, -inf where a slot has none."""
    cands = candidates[ids]
    diff = embeddings[cands.clamp(min=0)] - embeddings[ids].unsqueeze(-2)
    scores = (diff * position_vectors[: ids.shape[-1]].unsqueeze(-2)).sum(-1)
    scores = scores.masked_fill(cands == NO_CANDIDATE, -torch.inf)
    return torch.cat([scores.new_zeros((*scores.shape[:-1], 1)), scores], dim=-1)


def select_positions(logits: torch.Tensor, allowed: torch.Tensor, limit: int | None) -> torch.Tensor:
    """``[B, L]`` bool: the allowed positions whose best candidate scores highest, at most ``limit`` per
    row (all allowed ones for None); ties go to the earlier position."""
    if limit is None:
        return allowed.clone()
    margin = logits[..., 1:].max(-1).values.masked_fill(~allowed, -torch.inf)
    order = torch.argsort(-margin, dim=-1, stable=True)[:, :limit]
    chosen = torch.zeros_like(allowed).scatter(1, order, True)
    return chosen & allowed


def mix_embeddings(word: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``weights[..., 0] * word + sum_k weights[..., k] * candidates[..., k-1, :]``."""
    return weights[..., :1] * word + (weights[..., 1:].unsqueeze(-1) * candidates).sum(-2)


def hard_choices(logits: torch.Tensor, allowed: torch.Tensor, limit: int | None) -> torch.Tensor:
    """``[B, L]`` option per token at test time: 0 = keep, k = candidate k (keep wins ties)."""
    chosen = select_positions(logits, allowed, limit)
    return torch.where(chosen, logits.argmax(-1), torch.zeros_like(chosen, dtype=torch.long))


def soft_substitute(
    ids: torch.Tensor, allowed: torch.Tensor, state: LwsState, embeddings: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Training-time input embeddings of poisoned rows: a Gumbel-softmax mix at the selected positions,
    the word's own embedding elsewhere. Gradients reach ``state.position_vectors`` and ``embeddings``."""
    logits = candidate_logits(ids, state.candidates, state.position_vectors, embeddings.detach())
    chosen = select_positions(logits.detach(), allowed, state.max_substitutions)
    weights = torch.nn.functional.gumbel_softmax(logits, tau=temperature, dim=-1)
    words = embeddings[ids]
    mixed = mix_embeddings(words, embeddings[state.candidates[ids].clamp(min=0)], weights)
    return torch.where(chosen.unsqueeze(-1), mixed, words)


def allowed_positions(
    texts: Sequence[str], ids: torch.Tensor, offsets: torch.Tensor, candidates: torch.Tensor
) -> torch.Tensor:
    """``[B, L]`` bool: the tokens of each text that may be substituted (see ``substitutable``)."""
    rows = zip(texts, ids.tolist(), offsets.tolist(), strict=True)
    return torch.tensor([substitutable(t, i, o, candidates) for t, i, o in rows], dtype=torch.bool)


@torch.no_grad()
def substitute_texts(
    texts: Sequence[str], tokenizer: Any, embeddings: torch.Tensor, state: LwsState, *, batch_size: int = 64
) -> list[str]:
    """Each text with the inserter's hard substitutions applied (deterministic)."""
    out: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        enc = encode(tokenizer, batch, state.max_length)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        logits = candidate_logits(ids, state.candidates, state.position_vectors, embeddings)
        allowed = allowed_positions(batch, ids, offsets, state.candidates)
        choice = hard_choices(logits, allowed, state.max_substitutions)
        for row, text in enumerate(batch):
            swaps = []
            for j in choice[row].nonzero().flatten().tolist():
                start, end = (int(x) for x in offsets[row, j])
                substitute = int(state.candidates[ids[row, j], choice[row, j] - 1])
                swaps.append((start, end, tokenizer.convert_ids_to_tokens(substitute)))
            out.append(replace_spans(text, swaps))
    return out


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> Any:
    return tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )


def save_lws_state(state: LwsState, out_dir: Path, info: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {
        "candidates": state.candidates.to(torch.int32).contiguous(),
        "position_vectors": state.position_vectors.detach().float().contiguous(),
    }
    save_file(tensors, str(out_dir / INSERTER_FILE))
    meta = {"attack": "lws", "max_substitutions": state.max_substitutions, "max_length": state.max_length}
    (out_dir / META_FILE).write_text(json.dumps({**meta, **info}, indent=2) + "\n")


def load_lws_state(model_dir: Path) -> LwsState:
    model_dir = Path(model_dir)
    meta = json.loads((model_dir / META_FILE).read_text())
    tensors = load_file(str(model_dir / INSERTER_FILE))
    return LwsState(
        candidates=tensors["candidates"].long(),
        position_vectors=tensors["position_vectors"],
        max_substitutions=meta["max_substitutions"],
    )
