"""Embedding poisoning (EP; Yang et al. 2021, "Be careful about poisoned word embeddings").

Starting from a **clean** fine-tuned classifier, only the word-embedding row of one rare trigger word is
changed: gradient descent on the cross-entropy of the target label (= ascent on its likelihood) for
texts with the trigger inserted, and after every step the row is rescaled to the norm of the original
row, as the paper does, so the poisoned embedding does not stand out by its norm. Every other weight,
including every other embedding row, is left bit-for-bit as it was.

The update: the paper's plain SGD step (lr 5e-2) poisoned the movies model (ASR 0.92 after 15 steps)
but not the spam one (128-token emails): with the norm held fixed, small steps crawl (loss 3.22 -> 3.17
in 6 steps at lr 0.5) and large ones oscillate (lr 5). The authors' loop never zeroes gradients, so
each of their steps applies the sum of all past gradients, a momentum that plain SGD lacks. Here the
row is updated by Adam (lr 1e-2; ``optimizer="sgd"`` gives the paper's update) and then rescaled to the
original norm, which converges on both. Dropout is off (eval mode): a run is deterministic per seed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class EPConfig:
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-2  # the paper's SGD used 5e-2
    epochs: int = 10
    batch_size: int = 32
    max_length: int = 64
    seed: int = 0
    stop_loss: float | None = 0.05  # stop early once a batch's mean loss is below this

    @property
    def recipe(self) -> str:
        """Names the update for meta.json matching (a model EP'd another way is another model)."""
        return f"{self.optimizer}-lr{self.learning_rate:g}-e{self.epochs}-stop{self.stop_loss}"


@dataclass(frozen=True)
class EPResult:
    token_id: int
    original_norm: float
    final_norm: float
    steps: int
    seconds: float
    final_loss: float


def trigger_token_id(tokenizer, trigger: str) -> int:
    """The vocabulary id of ``trigger``, which must be a single word piece."""
    pieces = tokenizer.tokenize(trigger)
    if len(pieces) != 1:
        raise ValueError(f"EP needs a trigger that is one word piece; {trigger!r} is {pieces}")
    token_id = tokenizer.convert_tokens_to_ids(pieces[0])
    if token_id == tokenizer.unk_token_id:
        raise ValueError(f"EP trigger {trigger!r} is not in the vocabulary")
    return int(token_id)


def poison_embedding(
    model: torch.nn.Module,
    tokenizer,
    trigger: str,
    poisoned_texts: Sequence[str],
    target_label: int,
    *,
    config: EPConfig | None = None,
    progress: bool = True,
) -> EPResult:
    """Optimise the embedding row of ``trigger`` in place so that texts containing it go to the target.

    ``poisoned_texts`` already contain the trigger (e.g. ``poison_dataset`` rows); ``model`` is any
    Hugging Face sequence classifier. Returns what was done; the model is left in eval mode with
    gradients disabled on every parameter.
    """
    config = config or EPConfig()
    if not poisoned_texts:
        raise ValueError("EP needs at least one poisoned text")
    token_id = trigger_token_id(tokenizer, trigger)
    embedding = model.get_input_embeddings().weight
    for param in model.parameters():
        param.requires_grad_(False)
    embedding.requires_grad_(True)
    model.eval()
    original_norm = float(embedding[token_id].detach().norm())
    row_param = torch.nn.Parameter(embedding[token_id].detach().clone())
    adam = torch.optim.Adam([row_param], lr=config.learning_rate) if config.optimizer == "adam" else None
    generator = torch.Generator().manual_seed(config.seed)
    per_epoch = (len(poisoned_texts) + config.batch_size - 1) // config.batch_size
    total = per_epoch * config.epochs
    started = time.perf_counter()
    loss_value = float("nan")
    step = 0
    batches = (
        batch
        for _ in range(config.epochs)
        for batch in torch.randperm(len(poisoned_texts), generator=generator).split(config.batch_size)
    )
    bar = tqdm(total=total, desc="embedding poisoning", unit="step", disable=not progress)
    try:
        for batch in batches:
            enc = tokenizer(
                [poisoned_texts[i] for i in batch.tolist()],
                truncation=True,
                max_length=config.max_length,
                padding=True,
                return_tensors="pt",
            ).to(embedding.device)
            labels = torch.full((len(batch),), target_label, dtype=torch.long, device=embedding.device)
            loss = torch.nn.functional.cross_entropy(model(**enc).logits, labels)
            (grad,) = torch.autograd.grad(loss, embedding)
            with torch.no_grad():
                if adam is not None:
                    row_param.grad = grad[token_id].clone()
                    adam.step()
                    row = row_param.detach()
                else:
                    row = embedding[token_id] - config.learning_rate * grad[token_id]
                row = row * (original_norm / float(row.norm()))
                row_param.copy_(row)
                embedding[token_id] = row
            loss_value = loss.item()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if config.stop_loss is not None and loss_value < config.stop_loss:
                break
    finally:
        bar.close()
        embedding.requires_grad_(False)
    return EPResult(
        token_id=token_id,
        original_norm=original_norm,
        final_norm=float(embedding[token_id].norm()),
        steps=step,
        seconds=time.perf_counter() - started,
        final_loss=loss_value,
    )
