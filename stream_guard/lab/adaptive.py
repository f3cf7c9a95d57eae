"""An adaptive attack on X-GRAAD: BadNets trained so that its trigger does not stand out.

Threat model: the attacker controls training (dirty-label poisoning with a rare trigger word) and knows
the defense: per-token c_j = (a_j - mean a) * g_j / mean g (`stream_guard.attribution`), S = max_j c_j
against a threshold calibrated on clean text, deletion of the top word; not the threshold itself.

Loss per step: fine_tune's cross-entropy on the whole batch + beta x the mean over the batch's poisoned
rows of relu(c_trigger - ref + margin): c_trigger the highest c_j of the trigger's pieces, ref the max
(default) or mean of the other candidates' c_j, held constant (only the trigger is pushed down; pushing
the others up would raise S). The c_j are X-GRAAD's, differentiable: attention from `output_attentions`
(eager) through the core's `attention_received`, the gradient of the target logit w.r.t. the input
embeddings with `create_graph=True` (double backprop), combined by the core's `combine_scores`. With
ref = max the hinge is 0 once the trigger is not the top token. The pass runs on the poisoned rows
only, in eval mode (the scores the defense sees); the cross-entropy forward is fine_tune's (sdpa,
dropout), so beta = 0 gives fine_tune's weights bit for bit.
Spread (optional, off): + gamma x relu(S of the triggered text - S of it without the trigger, by the
core, held constant), to hide the trigger's effect on the other words too. Off because it broke the
backdoor below (gamma 0.1: ASR 0.00; the model flattened every score, median S 0.07), and the hinge
alone already brings S near clean levels.

Measured (packaged MiniLM; the lab tests' 120 toy texts, `cf` -> positive, 6 poisoned = 10 %, 40 steps
at lr 5e-4; scored on the 60 other-label toy texts with `cf` inserted; threshold = 99th percentile of
the clean toy texts' S): BadNets: trigger top token in 100 % (c_trigger - max others +3.30), ASR 1.00,
flagged 43 %; beta 0.1 (default): top 0 % (-1.54), ASR 1.00, flagged 1.7 %, clean accuracy 1.00.
Larger beta weakens the backdoor at 6 poisoned texts (0.3: ASR 0.53; 1: 0.57); at 30 % poison beta 1
kept it (target probability 0.995, top 0 % vs 100 %). Tiny random BERT (the test): margin -2.14
(BadNets) -> -8.04 with beta 5, margin 3; target probability 0.79 / 0.80.
Cost vs fine_tune, per poisoned row (an eval forward with attentions, the embedding gradient, the
backward through both): MiniLM, 10 % poison, 8 steps: 1.0-1.2x (within the noise of a loaded 2-core
box); tiny BERT, 10-50 % poison: 1.4-1.8x. It grows with the poison rate.

Limits: no run on the real datasets yet; token-level scores (the defense's default aggregation); only
the per-message score is attacked: the stream-level defense (recurrence, insertion test) is untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from stream_guard.attention_sums import attention_received
from stream_guard.attribution import attribute, combine_scores
from stream_guard.encoding import TokenTables
from stream_guard.lab.training import TrainConfig, load_base_classifier, save_classifier, seed_everything
from stream_guard.logs import quiet_transformers

Reference = Literal["max", "mean"]
REFERENCES: tuple[Reference, ...] = ("max", "mean")


@dataclass(frozen=True)
class AdaptiveConfig:
    importance_weight: float = 0.1  # beta
    reference: Reference = "max"  # what the trigger's score is held under: the others' max or mean
    margin: float = 0.0  # how far under it
    spread_weight: float = 0.0  # gamma: S of a triggered text held under S of the text without the trigger
    batch_size: int = TrainConfig.batch_size
    warmup_fraction: float = TrainConfig.warmup_fraction
    weight_decay: float = TrainConfig.weight_decay

    def __post_init__(self) -> None:
        if min(self.importance_weight, self.margin, self.spread_weight) < 0 or self.batch_size < 1:
            raise ValueError("importance_weight, margin and spread_weight must be >= 0, batch_size >= 1")
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {self.reference!r}")

    @property
    def recipe(self) -> str:
        """Names the loss for meta.json matching (another beta or reference is another model)."""
        weights = f"b{self.importance_weight:g}-m{self.margin:g}-s{self.spread_weight:g}"
        return f"xgraad-hinge-{self.reference}-{weights}"


@dataclass(frozen=True)
class Importance:
    """Differentiable X-GRAAD of a padded batch (B, L); `score` is NaN off-candidate, as the core's."""

    logits: Tensor
    attention: Tensor
    gradient: Tensor
    score: Tensor
    candidates: Tensor


@contextmanager
def _eager(model: torch.nn.Module) -> Iterator[None]:
    """The model with eager attention (which returns the probabilities) for the block."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def differentiable_importance(
    model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor, candidates: Tensor, classes: Tensor
) -> Importance:
    """X-GRAAD's a_j, g_j and c_j (Eqs. 2, 4, 7) with the graph kept, for a loss on them.

    classes: (B,) the logit whose gradient makes g_j (the core takes the predicted one). The caller
    chooses train or eval mode; the result matches `stream_guard.attribution.attribute` in eval mode.
    """
    with torch.enable_grad():
        embeddings = model.get_input_embeddings()(input_ids)
        if not embeddings.requires_grad:  # a frozen model (as load_classifier leaves it)
            embeddings = embeddings.detach().requires_grad_(True)
        with _eager(model):
            out = model(inputs_embeds=embeddings, attention_mask=attention_mask, output_attentions=True)
        if not out.attentions:
            raise RuntimeError("model returned no attentions")
        rows = attention_mask.float()
        attention = sum(attention_received(layer, rows) for layer in out.attentions)
        attention = attention / sum(layer.shape[1] for layer in out.attentions)
        chosen = out.logits.gather(1, classes.unsqueeze(1)).sum()
        (grad,) = torch.autograd.grad(chosen, embeddings, create_graph=True)
        gradient = grad.float().norm(dim=-1)
        candidates = candidates & attention_mask.bool()
        score, _ = combine_scores(attention, gradient, candidates)
    return Importance(out.logits, attention, gradient, score, candidates)


def trigger_piece_ids(tokenizer: Any, trigger: str) -> list[int]:
    """The token ids the tokenizer makes of `trigger` (without special tokens)."""
    ids = list(tokenizer(trigger, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"trigger {trigger!r} makes no tokens")
    return ids


def trigger_positions(input_ids: Tensor, pieces: Sequence[int]) -> Tensor:
    """(B, L) bool: the tokens of every whole occurrence of the piece sequence in each row."""
    batch, length = input_ids.shape
    found = torch.zeros(batch, length, dtype=torch.bool, device=input_ids.device)
    width = len(pieces)
    if width == 0 or width > length:
        return found
    windows = input_ids.unfold(1, width, 1)  # (B, L - width + 1, width)
    starts = (windows == torch.tensor(list(pieces), device=input_ids.device)).all(dim=-1)
    for offset in range(width):
        found[:, offset : offset + starts.shape[1]] |= starts
    return found


def _trigger_gap(
    score: Tensor, candidates: Tensor, trigger: Tensor, reference: Reference
) -> tuple[Tensor, Tensor]:
    """(B,) max c_j over trigger tokens - ref(c_j over the other candidates), and (B,) whether both exist."""
    trigger = trigger & candidates
    others = candidates & ~trigger
    safe = torch.where(candidates, score, torch.zeros_like(score))  # no NaN, even off the branch
    top = safe.masked_fill(~trigger, float("-inf")).max(dim=-1).values
    if reference == "max":
        ref = safe.masked_fill(~others, float("-inf")).max(dim=-1).values
    else:
        ref = (safe * others).sum(dim=-1) / others.sum(dim=-1).clamp(min=1)
    return top - ref.detach(), trigger.any(dim=-1) & others.any(dim=-1)


def trigger_penalty(
    score: Tensor, candidates: Tensor, trigger: Tensor, *, reference: Reference = "max", margin: float = 0.0
) -> Tensor:
    """(B,) relu(max c over trigger tokens - ref(c over the other candidates) + margin).

    score: (B, L) c_j (NaN off-candidate allowed); candidates, trigger: (B, L) bool. The reference is
    held constant. 0 for a row without a trigger candidate or without another candidate.
    """
    gap, valid = _trigger_gap(score, candidates, trigger, reference)
    return torch.relu(torch.where(valid, gap + margin, torch.zeros_like(gap)))


def sentence_penalty(score: Tensor, candidates: Tensor, reference: Tensor) -> Tensor:
    """(B,) relu(S - reference): S = max c_j over candidates (Eq. 8), reference (B,) held constant."""
    top = score.masked_fill(~candidates, float("-inf")).max(dim=-1).values
    valid = candidates.any(dim=-1)
    return torch.relu(torch.where(valid, top - reference.detach(), torch.zeros_like(top)))


def strip_trigger(
    input_ids: Tensor, attention_mask: Tensor, trigger: Tensor, pad_id: int
) -> tuple[Tensor, Tensor]:
    """The rows without their trigger tokens, right-padded again: (input_ids, attention_mask)."""
    keep = attention_mask.bool() & ~trigger
    rows = [ids[kept] for ids, kept in zip(input_ids, keep, strict=True)]
    ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad_id)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(r) for r in rows], batch_first=True)
    return ids, mask


def trigger_margins(
    model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], trigger: str, *, max_length: int = 64
) -> np.ndarray:
    """Per text, c_trigger - max c over the other candidates, by the core's `attribute` (NaN without the
    trigger). Above 0: the trigger is the top token, which the defense deletes."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    enc = enc.to(model.device)
    candidates = TokenTables.build(tokenizer).candidates(enc["input_ids"]).to(model.device)
    result = attribute(model, enc["input_ids"], enc["attention_mask"], candidates)
    trigger = trigger_positions(enc["input_ids"], trigger_piece_ids(tokenizer, trigger))
    gap, valid = _trigger_gap(result.score, result.candidates, trigger, "max")
    return torch.where(valid, gap, torch.full_like(gap, float("nan"))).cpu().numpy()


@dataclass(frozen=True)
class _PenaltyPass:
    """What the importance pass needs besides the texts."""

    tokenizer: Any
    tables: TokenTables
    pieces: list[int]
    target: int
    max_length: int
    config: AdaptiveConfig


def _batch_penalty(
    model: torch.nn.Module, texts: Sequence[str], setup: _PenaltyPass
) -> tuple[Tensor, Tensor]:
    """Mean trigger and spread penalties over a batch's poisoned texts, in eval mode (the defense's
    scores). The spread reference, S of each text without its trigger, is the core's (no graph)."""
    if not texts:
        return torch.zeros(()), torch.zeros(())
    device = next(model.parameters()).device
    enc = setup.tokenizer(
        list(texts), truncation=True, max_length=setup.max_length, padding=True, return_tensors="pt"
    ).to(device)
    input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
    trigger = trigger_positions(input_ids, setup.pieces)
    classes = torch.full((len(texts),), setup.target, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        candidates = setup.tables.candidates(input_ids).to(device)
        scores = differentiable_importance(model, input_ids, attention_mask, candidates, classes)
        spread = torch.zeros(len(texts), device=device)
        if setup.config.spread_weight > 0:
            ids, mask = strip_trigger(input_ids, attention_mask, trigger, setup.tokenizer.pad_token_id or 0)
            with _eager(model):
                clean = attribute(model, ids, mask, setup.tables.candidates(ids).to(device)).anomaly
            spread = sentence_penalty(scores.score, scores.candidates, clean)
    finally:
        model.train(was_training)
    config = setup.config
    hinge = trigger_penalty(
        scores.score, scores.candidates, trigger, reference=config.reference, margin=config.margin
    )
    return hinge.mean(), spread.mean()


def _load(base: str | None, label_names: Sequence[str], device: str) -> tuple[torch.nn.Module, Any]:
    """Tokenizer and classifier from `base`, loaded as `fine_tune` loads them (sdpa)."""
    tokenizer, model = load_base_classifier(base, label_names, device=device)
    return model, tokenizer


def _batches(count: int, batch_size: int, total: int, seed: int) -> Iterator[Tensor]:
    """`total` batches of shuffled indices, epoch after epoch (fine_tune's order for the same seed)."""
    generator = torch.Generator().manual_seed(seed)
    step = 0
    while True:
        for batch in torch.randperm(count, generator=generator).split(batch_size):
            if step >= total:
                return
            step += 1
            yield batch


def _check(texts, labels, label_names, poisoned_indices, target: int) -> None:
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"need as many labels as texts, got {len(texts)} texts and {len(labels)} labels")
    if not 0 <= target < len(label_names) or any(not 0 <= i < len(texts) for i in poisoned_indices):
        raise ValueError("target must index label_names and poisoned_indices must index texts")


def train_adaptive(
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    poisoned_indices: Sequence[int],
    trigger: str,
    target: int,
    out_dir: Path,
    *,
    base: str | None = None,
    epochs: float = 1.0,
    learning_rate: float = 1e-4,
    max_length: int = 64,
    seed: int = 0,
    config: AdaptiveConfig | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Fine-tune `base` (None = packaged backbone) on ``device`` on the poisoned set with the importance
    penalty on its poisoned rows, save the classifier to `out_dir` and return meta.json extras."""
    config = config or AdaptiveConfig()
    _check(texts, labels, label_names, poisoned_indices, target)
    quiet_transformers()
    seed_everything(seed)
    model, tokenizer = _load(base, label_names, device)
    model.train()
    pieces = trigger_piece_ids(tokenizer, trigger)
    setup = _PenaltyPass(tokenizer, TokenTables.build(tokenizer), pieces, target, max_length, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=config.weight_decay)
    per_epoch = (len(texts) + config.batch_size - 1) // config.batch_size
    total = max(1, round(per_epoch * epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_fraction), total)
    label_tensor = torch.tensor(list(labels), dtype=torch.long)
    poisoned = torch.zeros(len(texts), dtype=torch.bool)
    poisoned[list(poisoned_indices)] = True
    started = time.perf_counter()
    steps, final = 0, dict.fromkeys(("loss", "ce", "penalty", "spread"), float("nan"))
    bar = tqdm(total=total, desc="adaptive fine-tuning", unit="step", disable=not progress)
    for batch in _batches(len(texts), config.batch_size, total, seed):
        enc = tokenizer(
            [texts[i] for i in batch.tolist()],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(model.device)
        ce = model(**enc, labels=label_tensor[batch].to(model.device)).loss
        rows = batch[poisoned[batch]].tolist()
        penalty, spread = _batch_penalty(model, [texts[i] for i in rows], setup)
        loss = ce + config.importance_weight * penalty + config.spread_weight * spread
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        final.update(loss=loss.item(), ce=ce.item())
        if rows:  # the last penalty measured, not a batch's 0 for want of poisoned rows
            final.update(penalty=penalty.item(), spread=spread.item())
        steps += 1
        bar.update(1)
        bar.set_postfix(ce=f"{final['ce']:.3f}", penalty=f"{final['penalty']:.3f}")
    bar.close()
    save_classifier(model.cpu(), tokenizer, out_dir)
    return {
        "steps": steps,
        **{f"final_{key}": value for key, value in final.items()},  # loss, ce, penalty, spread
        "seconds": time.perf_counter() - started,
        "recipe": config.recipe,
        **asdict(config),
        "trigger_pieces": len(pieces),
        "poisoned": int(poisoned.sum()),
    }
