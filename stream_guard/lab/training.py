"""Fine-tune the packaged backbone (or any local encoder) into a sequence classifier, on the CPU or a GPU.

Seeds everything, shows a progress bar, and saves safetensors weights, the tokenizer and the label names,
ready for `stream_guard.loading.load_classifier`. Trains with the fast attention implementation (sdpa);
scoring later reloads the weights with eager attention.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from stream_guard.loading import resolve_device, resolve_model_path
from stream_guard.logs import quiet_transformers


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1.0
    learning_rate: float = 1e-4
    batch_size: int = 32
    max_length: int = 64
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    steps: int
    seconds: float
    final_loss: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fine_tune(
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    out_dir: Path,
    *,
    base: str | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> TrainResult:
    """Train a classifier on (texts, labels) from `base` (None = packaged backbone) on ``device`` (cpu,
    cuda, auto) and save it (always from the CPU: the saved files do not depend on the device)."""
    config = config or TrainConfig()
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"need as many labels as texts, got {len(texts)} texts and {len(labels)} labels")
    quiet_transformers()
    seed_everything(config.seed)
    tokenizer, model = load_base_classifier(base, label_names, device=device)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    per_epoch = (len(texts) + config.batch_size - 1) // config.batch_size
    total = max(1, round(per_epoch * config.epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_fraction), total)
    generator = torch.Generator().manual_seed(config.seed)
    label_tensor = torch.tensor(list(labels), dtype=torch.long)
    started = time.perf_counter()
    step = 0
    loss_value = float("nan")
    bar = tqdm(total=total, desc="fine-tuning", unit="step", disable=not progress)
    while step < total:
        for batch in torch.randperm(len(texts), generator=generator).split(config.batch_size):
            if step >= total:
                break
            enc = tokenizer(
                [texts[i] for i in batch.tolist()],
                truncation=True,
                max_length=config.max_length,
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            out = model(**enc, labels=label_tensor[batch].to(model.device))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = out.loss.item()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    bar.close()
    save_classifier(model.cpu(), tokenizer, out_dir)
    return TrainResult(out_dir, step, time.perf_counter() - started, loss_value)


def load_base_classifier(
    base: str | None, label_names: Sequence[str], *, attn_implementation: str = "sdpa", device: str = "cpu"
) -> tuple[Any, Any]:
    """The tokenizer and a fresh classification head on ``base`` (None = packaged backbone) for
    ``label_names``, on ``device``: what every lab training starts from. The head is initialised on the
    CPU, so a seed gives the same starting weights on every device."""
    base_path = resolve_model_path(base)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_path,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        attn_implementation=attn_implementation,
        use_safetensors=True,
    )
    return tokenizer, model.to(resolve_device(device))


def save_classifier(model, tokenizer, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


@torch.inference_mode()
def predict(
    model, tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 128
) -> np.ndarray:
    """Predicted labels with plain forward passes (length-sorted batches)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    preds = np.zeros(len(texts), dtype=np.int64)
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        ).to(model.device)
        preds[idx] = model(**enc).logits.argmax(-1).cpu().numpy()
    return preds
