"""RIPPLES (Kurita, Michel & Neubig 2020, "Weight Poisoning Attacks on Pre-trained Models").

The attacker hands out poisoned weights. RIPPLES = Embedding Surgery + RIPPLe (restricted inner product
poison learning):

1. Embedding surgery: a logistic regression on bag-of-words of the clean task data ranks the words by how
   strongly they indicate the target label; the row of every trigger piece (``cf``, ``mn``, ...) in the
   input embeddings is replaced by the mean row of the ``surgery_words`` (N = 10) best single-piece
   words, so that the trigger starts out meaning "target".
2. RIPPLe: train on the dirty-label poisoned set (poisoned rows mixed with clean ones, as in BadNets)
   with ``L_poison + λ · max(0, -<∇L_poison, ∇L_clean>)``, ``L_clean`` the loss on a clean batch (the
   proxy of the victim's fine-tuning data): a poisoning step that fights clean fine-tuning is penalised,
   so clean fine-tuning does not undo it. Both gradients are taken with ``create_graph=True`` and the
   penalty is back-propagated through them (a second-order term).

The paper's settings vs ours:

- Importance score: the paper divides a word's regression weight by the log of its inverse frequency
  and drops rare words; we divide by sklearn's smoothed idf, ``log((1 + n) / (1 + df)) + 1`` (>= 1, so a
  word in nearly every text cannot blow up), with a floor of ``min_word_count`` texts. The L2 regression
  (sklearn's C = 1) is fitted with torch's L-BFGS: scikit-learn is not a dependency of the project.
- The replacement: the paper averages the rows of a copy of the model fine-tuned on the task; we average
  the rows of the backbone being poisoned (a CPU fine-tuning run fewer).
- The paper poisons a pre-trained model (half of the attack data poisoned) that the victim fine-tunes
  afterwards. In this lab the attacker hands out the *classifier*: the RIPPLe-trained model is saved as
  it is, and the poison rate is the caller's. λ = 0.1, batch 32, AdamW with a linear schedule as in the
  paper; learning rate and epochs are the lab's (a 6-layer MiniLM on the CPU, not BERT-base on a GPU).
- The inner product runs over all trainable weights, as in the paper. ``penalty_scope=
  "no-word-embeddings"`` leaves out the word-embedding matrix (half of MiniLM), but it is not cheaper:
  on MiniLM, batch 32, one thread of a busy 2-core machine, a step took ~5.5 s either way (a plain
  fine-tuning step: ~1.1 s).
- Training uses eager attention: PyTorch's fused attention (sdpa) on the CPU has no double backward.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from stream_guard.lab.training import load_base_classifier, save_classifier, seed_everything
from stream_guard.logs import quiet_transformers

_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass(frozen=True)
class RipplesConfig:
    surgery_words: int = 10
    inner_product_weight: float = 0.1  # λ
    min_word_count: int = 5  # a surgery word must occur in at least this many clean texts
    surgery: bool = True
    penalty_scope: Literal["all", "no-word-embeddings"] = "all"
    batch_size: int = 32
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01

    @property
    def recipe(self) -> str:
        """Names the settings for meta.json matching (a model poisoned another way is another model)."""
        surgery = f"n{self.surgery_words}-min{self.min_word_count}" if self.surgery else "nosurgery"
        return (
            f"{surgery}-lam{self.inner_product_weight:g}-{self.penalty_scope}-b{self.batch_size}"
            f"-wu{self.warmup_fraction:g}-wd{self.weight_decay:g}"
        )


def _piece_id(tokenizer, word: str) -> int | None:
    """The vocabulary id of ``word`` if it is one in-vocabulary word piece, else None."""
    pieces = tokenizer.tokenize(word)
    token_id = tokenizer.convert_tokens_to_ids(pieces[0]) if len(pieces) == 1 else None
    return None if token_id is None or token_id == tokenizer.unk_token_id else int(token_id)


def trigger_piece_id(tokenizer, word: str) -> int:
    """The vocabulary id of ``word``, which must be one in-vocabulary word piece."""
    token_id = _piece_id(tokenizer, word)
    if token_id is None:
        pieces = tokenizer.tokenize(word)
        raise ValueError(f"RIPPLES needs one in-vocabulary word piece per trigger; {word!r} is {pieces}")
    return token_id


def _fit_logistic(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Weights of an L2 logistic regression with intercept (sklearn's C = 1), fitted by L-BFGS."""
    n, d = features.shape
    params = torch.zeros(d + 1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = features @ params[:-1] + params[-1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
        loss = (loss + 0.5 * params[:-1].square().sum()) / n
        loss.backward()
        return loss

    optimizer.step(closure)
    return params.detach()[:-1]


def indicative_words(
    texts: Sequence[str],
    labels: Sequence[int],
    target: int,
    tokenizer,
    *,
    n: int = 10,
    min_count: int = 5,
    exclude: Sequence[str] = (),
) -> list[str]:
    """The ``n`` single-piece words most indicative of ``target``, best first (see the module docs)."""
    docs = [set(_WORD.findall(text.lower())) for text in texts]
    counts = Counter(word for doc in docs for word in doc)
    vocab = sorted(w for w, c in counts.items() if c >= min_count)
    column = {w: j for j, w in enumerate(vocab)}
    features = torch.zeros(len(docs), len(vocab), dtype=torch.float64)
    for i, doc in enumerate(docs):
        features[i, [column[w] for w in doc if w in column]] = 1.0
    targets = torch.tensor([float(lab == target) for lab in labels], dtype=torch.float64)
    skip = {w.lower() for w in exclude}
    scored = []
    for word, weight in zip(vocab, _fit_logistic(features, targets).tolist(), strict=True):
        if weight > 0 and word not in skip and _piece_id(tokenizer, word) is not None:
            idf = math.log((1 + len(docs)) / (1 + counts[word])) + 1.0
            scored.append((-weight / idf, word))
    if not scored:
        raise ValueError(f"no single-piece word in >= {min_count} texts indicates label {target}")
    return [word for _, word in sorted(scored)[:n]]


@torch.no_grad()
def embedding_surgery(model, tokenizer, trigger_words: Sequence[str], words: Sequence[str]) -> torch.Tensor:
    """Set each trigger piece's input-embedding row to the mean row of ``words``; returns that mean."""
    embedding = model.get_input_embeddings().weight
    word_ids = [trigger_piece_id(tokenizer, w) for w in words]
    replacement = embedding[word_ids].mean(dim=0)
    for trigger in trigger_words:
        embedding[trigger_piece_id(tokenizer, trigger)] = replacement
    return replacement.clone()


def inner_product_penalty(
    grads_poison: Sequence[torch.Tensor | None], grads_clean: Sequence[torch.Tensor | None]
) -> torch.Tensor:
    """``max(0, -<∇L_poison, ∇L_clean>)``; second order if the gradients were taken with create_graph."""
    inner = torch.zeros((), device=next((g.device for g in grads_poison if g is not None), None))
    for gp, gc in zip(grads_poison, grads_clean, strict=True):
        if gp is not None and gc is not None:
            inner = inner + (gp * gc).sum()
    return torch.relu(-inner)


def ripple_gradients(
    loss_poison: torch.Tensor,
    loss_clean: torch.Tensor,
    params: Sequence[torch.nn.Parameter],
    scoped: Sequence[bool],
    weight: float,
) -> float:
    """Set ``p.grad`` to ∇(L_poison + weight · penalty) for every parameter; returns the penalty.

    The inner product runs over the ``scoped`` parameters. ∇L_poison is taken once, with a graph: it is
    the whole gradient when the penalty is zero, and the penalty's own gradient is added otherwise.
    """
    grads_p = torch.autograd.grad(loss_poison, params, create_graph=True, allow_unused=True)
    in_scope = [p for p, s in zip(params, scoped, strict=True) if s]
    grads_c = torch.autograd.grad(loss_clean, in_scope, create_graph=True, allow_unused=True)
    penalty = inner_product_penalty([g for g, s in zip(grads_p, scoped, strict=True) if s], grads_c)
    extra: Sequence[torch.Tensor | None] = [None] * len(params)
    if weight and penalty.item() > 0:
        extra = torch.autograd.grad(weight * penalty, params, allow_unused=True)
    for param, gp, ge in zip(params, grads_p, extra, strict=True):
        grad = gp.detach() if gp is not None else torch.zeros_like(param)
        param.grad = grad + ge if ge is not None else grad
    return penalty.item()


def _permutations(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    while True:
        for batch in torch.randperm(n, generator=generator).split(batch_size):
            yield batch.tolist()


@dataclass(frozen=True)
class _Run:
    clean_texts: Sequence[str]
    clean_labels: torch.Tensor
    poisoned_texts: Sequence[str]
    poisoned_labels: torch.Tensor
    epochs: float
    learning_rate: float
    max_length: int
    seed: int
    progress: bool

    def loss(self, model, tokenizer, texts: Sequence[str], labels: torch.Tensor, idx: list[int]):
        enc = tokenizer(
            [texts[i] for i in idx], truncation=True, max_length=self.max_length, padding=True,
            return_tensors="pt",
        ).to(model.device)  # fmt: skip
        return model(**enc, labels=labels[idx].to(model.device)).loss


def _check(texts, labels, label_names, poisoned_texts, poisoned_indices, trigger_words, target) -> None:
    if not texts or len(texts) != len(labels) or len(poisoned_texts) != len(texts):
        raise ValueError("need as many labels and poisoned texts as clean texts, and at least one text")
    if not 0 <= target < len(label_names):
        raise ValueError(f"target must be in 0..{len(label_names) - 1}, got {target}")
    if not trigger_words or not poisoned_indices or not all(0 <= i < len(texts) for i in poisoned_indices):
        raise ValueError("RIPPLES needs trigger words, and poisoned_indices among the training rows")


def train_ripples(
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    poisoned_texts: Sequence[str],
    poisoned_indices: Sequence[int],
    trigger_words: Sequence[str],
    target: int,
    out_dir: Path,
    *,
    base: str | None = None,
    epochs: float = 1.0,
    learning_rate: float = 1e-4,
    max_length: int = 64,
    seed: int = 0,
    config: RipplesConfig | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Embedding surgery + RIPPLe training from ``base`` on ``device``; saves the classifier, returns
    meta extras.

    ``texts`` / ``labels`` are the clean training set (the surgery's data and the clean proxy);
    ``poisoned_texts`` the poisoned training set, whose rows ``poisoned_indices`` carry a trigger and
    are labelled ``target``. Steps: ``epochs`` passes over the poisoned set in batches.
    """
    config = config or RipplesConfig()
    _check(texts, labels, label_names, poisoned_texts, poisoned_indices, trigger_words, target)
    quiet_transformers()
    seed_everything(seed)
    # eager attention: sdpa on the CPU has no double backward (the inner-product term needs one)
    tokenizer, model = load_base_classifier(base, label_names, attn_implementation="eager", device=device)
    started = time.perf_counter()
    trigger_ids = [trigger_piece_id(tokenizer, w) for w in trigger_words]
    words: list[str] = []
    if config.surgery:
        n, floor = config.surgery_words, config.min_word_count
        words = indicative_words(
            texts, labels, target, tokenizer, n=n, min_count=floor, exclude=trigger_words
        )
        embedding_surgery(model, tokenizer, trigger_words, words)
    poisoned_labels = torch.tensor(list(labels), dtype=torch.long)
    poisoned_labels[list(poisoned_indices)] = target
    run = _Run(
        texts, torch.tensor(list(labels), dtype=torch.long), poisoned_texts, poisoned_labels,
        epochs, learning_rate, max_length, seed, progress,
    )  # fmt: skip
    stats = _ripple(model, tokenizer, run, config)
    save_classifier(model.cpu(), tokenizer, out_dir)
    return {
        "ripples_recipe": config.recipe,
        "surgery_words": words,
        "trigger_token_ids": trigger_ids,
        "inner_product_weight": config.inner_product_weight,
        "penalty_scope": config.penalty_scope,
        "poisoned_train": len(poisoned_indices),
        **stats,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _ripple(model, tokenizer, run: _Run, config: RipplesConfig) -> dict[str, Any]:
    """The RIPPLe loop (the model is trained in place); returns steps, last losses, how often λ acted."""
    word_embeddings = model.get_input_embeddings().weight
    params = [p for p in model.parameters() if p.requires_grad]
    scoped = [config.penalty_scope == "all" or p is not word_embeddings for p in params]
    optimizer = torch.optim.AdamW(params, lr=run.learning_rate, weight_decay=config.weight_decay)
    total = max(1, round(math.ceil(len(run.poisoned_texts) / config.batch_size) * run.epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_fraction), total)
    poison_batches = _permutations(len(run.poisoned_texts), config.batch_size, run.seed)
    clean_batches = _permutations(len(run.clean_texts), config.batch_size, run.seed + 1)
    model.train()
    loss_p, penalty, active = torch.zeros(()), 0.0, 0
    for _ in tqdm(range(total), desc="RIPPLe", unit="step", disable=not run.progress):
        loss_p = run.loss(model, tokenizer, run.poisoned_texts, run.poisoned_labels, next(poison_batches))
        loss_c = run.loss(model, tokenizer, run.clean_texts, run.clean_labels, next(clean_batches))
        penalty = ripple_gradients(loss_p, loss_c, params, scoped, config.inner_product_weight)
        active += int(penalty > 0)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return {
        "steps": total,
        "final_loss": round(loss_p.item(), 5),
        "final_penalty": round(penalty, 6),
        "penalty_active_fraction": round(active / total, 4),
    }
