"""RAP: robustness-aware perturbations (Yang et al. 2021b, "RAP: Robustness-Aware Perturbations for
Defending against Backdoor Attacks on NLP Models").

Construction: a rare word (the RAP word, prepended to a text) gets its embedding row optimised so that
inserting it lowers the target-class probability of clean target-class texts by an amount in
``[low, high]`` (default 0.1-0.3): loss = scale * mean(relu(low - drop)) + mean(relu(drop - high)),
gradient steps on that one row, rescaled to its original norm after each step (as the authors' code).
The model's other weights are untouched; the defense works on a private copy of the model.

Detection: poisoned inputs are held at the target class by the backdoor, far more robustly than clean
ones, so the RAP word barely moves them. An input predicted as the target class whose drop is below
the threshold is rejected; the threshold is the ``frr`` quantile of the drops of clean validation
texts predicted as the target (the false-rejection budget). Inputs predicted as another class are
never rejected (the attack has failed on them anyway).

Pick a RAP word that is not the attacker's trigger: the default ``jj`` is one in-vocabulary piece and
is not among the lab's triggers (cf, mn, bb, tq, mb and their split variants).

Learning rate: the authors use plain SGD with lr 1e-2 but never zero the gradient between steps, so
each step applies the sum of all past gradients. Here every step uses its own gradient; with that,
lr 1e-2 barely moves the row of the packaged MiniLM (norm ~1): on movies-badnets-cf-s0 the median
clean drop stayed at 0.005 after 4 steps, while lr 1.0 reached 0.10 within 6 steps. Hence lr 1.0.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.defenses.base import Defense, Judgement
from stream_guard.lab.ep import trigger_token_id
from stream_guard.lab.inference import predict_proba


@dataclass(frozen=True)
class RapConfig:
    word: str = "jj"
    low: float = 0.1  # wanted drop of the target probability on clean target-class texts
    high: float = 0.3
    scale: float = 1.0  # weight of the "dropped too much" term
    learning_rate: float = 1.0  # see the module docstring
    epochs: int = 3
    batch_size: int = 32
    max_construct: int = 256  # clean target-class texts the RAP embedding is fitted on, at most
    frr: float = 0.05
    seed: int = 0
    max_length: int = 128


def insert_rap(texts: Sequence[str], word: str) -> list[str]:
    """The RAP word prepended to each text (the authors insert it at the first position)."""
    return [f"{word} {t}" if t.strip() else word for t in texts]


class Rap:
    """RAP around a copy of ``model`` (any HF sequence classifier) for one target label."""

    def __init__(self, model: Any, tokenizer: Any, target: int, config: RapConfig | None = None) -> None:
        self.config = config or RapConfig()
        self.tokenizer = tokenizer
        self.target = target
        self.model = copy.deepcopy(model).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.token_id = trigger_token_id(tokenizer, self.config.word)
        self.threshold: float | None = None
        self.losses: list[float] = []

    def _encode(self, texts: Sequence[str]):
        return self.tokenizer(
            list(texts), truncation=True, max_length=self.config.max_length, padding=True, return_tensors="pt"
        ).to(next(self.model.parameters()).device)

    def construct(self, texts: Sequence[str], *, progress: bool = False) -> list[float]:
        """Optimise the RAP word's embedding on clean texts of the target class; returns step losses."""
        cfg = self.config
        if not texts:
            raise ValueError("RAP needs clean validation texts of the target class")
        embedding = self.model.get_input_embeddings().weight
        norm = float(embedding[self.token_id].norm())
        generator = torch.Generator().manual_seed(cfg.seed)
        steps = cfg.epochs * ((len(texts) + cfg.batch_size - 1) // cfg.batch_size)
        bar = tqdm(total=steps, desc="RAP construction", unit="step", disable=not progress)
        embedding.requires_grad_(True)
        try:
            for _ in range(cfg.epochs):
                for batch in torch.randperm(len(texts), generator=generator).split(cfg.batch_size):
                    chunk = [texts[i] for i in batch.tolist()]
                    with torch.no_grad():
                        p_orig = torch.softmax(self.model(**self._encode(chunk)).logits, -1)[:, self.target]
                    p_rap = torch.softmax(self.model(**self._encode(insert_rap(chunk, cfg.word))).logits, -1)
                    drop = p_orig - p_rap[:, self.target]
                    loss = cfg.scale * torch.relu(drop - cfg.high).mean() + torch.relu(cfg.low - drop).mean()
                    (grad,) = torch.autograd.grad(loss, embedding)
                    with torch.no_grad():
                        row = embedding[self.token_id] - cfg.learning_rate * grad[self.token_id]
                        embedding[self.token_id] = row * (norm / float(row.norm()))
                    self.losses.append(loss.item())
                    bar.update(1)
                    bar.set_postfix(loss=f"{self.losses[-1]:.4f}")
        finally:
            embedding.requires_grad_(False)
            bar.close()
        return self.losses

    def probabilities_and_drops(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(N, C) probabilities without the RAP word and (N,) drops of the target probability with it."""
        cfg = self.config
        probs = predict_proba(self.model, self.tokenizer, texts, max_length=cfg.max_length)
        with_rap = predict_proba(
            self.model, self.tokenizer, insert_rap(texts, cfg.word), max_length=cfg.max_length
        )
        return probs, probs[:, self.target] - with_rap[:, self.target]

    def calibrate(self, texts: Sequence[str]) -> np.ndarray:
        """Threshold = ``frr`` quantile of the drops of clean ``texts`` predicted as the target."""
        probs, drops = self.probabilities_and_drops(texts)
        on_target = drops[probs.argmax(axis=1) == self.target]
        if on_target.size == 0:
            raise ValueError("no clean validation text is predicted as the target class")
        self.threshold = float(np.quantile(on_target, self.config.frr))
        return on_target

    def flags(self, probs: np.ndarray, drops: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            raise RuntimeError("calibrate RAP first")
        return (probs.argmax(axis=1) == self.target) & (drops < self.threshold)


def rap_score(probs: np.ndarray, drops: np.ndarray, target: int) -> np.ndarray:
    """Suspiciousness consistent with the rule: minus the drop for inputs predicted as the target,
    and below every such input (they are never rejected) for the others. Drops lie in [-1, 1]."""
    return -drops - 3.0 * (probs.argmax(axis=1) != target)


class RapDefense(Defense):
    """RAP as a reject-mode defense: constructed on the validation split's target-class texts (at most
    ``max_construct``), calibrated on all of them; a judgement's label is the model's own prediction,
    its score :func:`rap_score`."""

    name = "rap"
    mode = "reject"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        target: int,
        config: RapConfig | None = None,
        *,
        progress: bool = False,
    ) -> None:
        self.config = config or RapConfig()
        self.rap = Rap(model, tokenizer, target, self.config)
        self.progress = progress
        self.validation_drops: np.ndarray | None = None

    def fit(self, validation: LabeledDataset) -> None:
        target = self.rap.target
        texts = list(validation.texts)
        target_texts = [t for t, y in zip(texts, validation.labels, strict=True) if y == target]
        self.rap.construct(target_texts[: self.config.max_construct], progress=self.progress)
        self.validation_drops = self.rap.calibrate(texts)
        self.threshold = self.rap.threshold

    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        probs, drops = self.rap.probabilities_and_drops(texts)
        flags = self.rap.flags(probs, drops)
        scores = rap_score(probs, drops, self.rap.target)
        return [
            Judgement(int(label), bool(flag), float(score))
            for label, flag, score in zip(probs.argmax(axis=1), flags, scores, strict=True)
        ]

    def details(self) -> dict[str, Any]:
        losses = self.rap.losses
        drops = self.validation_drops
        return {
            "rap_word": self.config.word,
            "rap_final_loss": losses[-1] if losses else None,
            "rap_val_median_drop": float(np.median(drops)) if drops is not None else None,
        }
