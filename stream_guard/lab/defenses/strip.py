"""STRIP for text (Gao et al. 2021, STRIP-ViTA): a trigger keeps the prediction fixed under strong noise.

For **each input** x, ``copies`` perturbed copies are made: in each, ``replace_ratio`` of x's words
(at random positions) are replaced by the highest-TF-IDF words of a randomly drawn clean held-out
text. The input's score is the Shannon entropy of the predicted class distribution, averaged over
**its own** copies. A trigger that forces the target class survives in the copies where it was not
replaced, so poisoned inputs have low entropy. The threshold is the ``frr`` quantile of the entropies
of clean validation texts (the false-rejection budget): inputs below it are rejected.

(OpenBackdoor's version averages entropy across different examples of a batch; this one does not.)
Defaults (20 copies, 70% of words replaced, replacement words from held-out texts of the non-target
classes) follow the STRIP-ViTA text baseline of the RAP authors' code.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.defenses.base import Defense, Judgement
from stream_guard.lab.inference import ProbabilityFn

_PUNCT = re.compile(r"^\W+$")


@dataclass(frozen=True)
class StripConfig:
    copies: int = 20
    replace_ratio: float = 0.7
    frr: float = 0.05  # share of clean validation texts rejected
    seed: int = 0
    chunk: int = 64  # inputs perturbed and classified per call


class HeldOutWords:
    """Per held-out text, its distinct words by descending TF-IDF (IDF over the held-out texts)."""

    def __init__(self, texts: Sequence[str]) -> None:
        docs = [[w for w in t.split() if not _PUNCT.match(w)] for t in texts]
        docs = [d for d in docs if d]
        if not docs:
            raise ValueError("STRIP needs held-out texts with words")
        df = Counter(w for d in docs for w in set(d))
        n = len(docs)
        self.ranked: list[list[str]] = []
        for d in docs:
            tf = Counter(d)
            score = {w: (c / len(d)) * (math.log(n / df[w]) + 1.0) for w, c in tf.items()}
            self.ranked.append(sorted(score, key=lambda w: (-score[w], w)))

    def __len__(self) -> int:
        return len(self.ranked)


def text_rng(seed: int, text: str) -> np.random.Generator:
    """A generator that depends on the text itself, not on its position in a batch."""
    return np.random.default_rng([seed, zlib.crc32(text.encode("utf-8", "surrogatepass"))])


def perturb(
    text: str, words: HeldOutWords, rng: np.random.Generator, copies: int, replace_ratio: float
) -> list[str]:
    """``copies`` copies of ``text``, each with ``replace_ratio`` of its words replaced."""
    tokens = text.split()
    if not tokens:
        return [text] * copies
    k = max(1, int(len(tokens) * replace_ratio))
    out = []
    for _ in range(copies):
        donor = words.ranked[int(rng.integers(len(words)))]
        positions = rng.choice(len(tokens), size=k, replace=False)
        new = list(tokens)
        for i, pos in enumerate(positions):
            new[int(pos)] = donor[i % len(donor)]
        out.append(" ".join(new))
    return out


def entropy(probs: np.ndarray) -> np.ndarray:
    """(N, C) -> (N,) Shannon entropy in nats."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1)


class Strip:
    """STRIP around one model (``prob_fn``), with replacement words from clean held-out texts."""

    def __init__(self, prob_fn: ProbabilityFn, held_out: Sequence[str], config: StripConfig | None = None):
        self.prob_fn = prob_fn
        self.config = config or StripConfig()
        self.words = HeldOutWords(held_out)
        self.threshold: float | None = None

    def entropies(self, texts: Sequence[str], *, progress: bool = False, desc: str = "STRIP") -> np.ndarray:
        """(N,) mean entropy over each input's own perturbed copies."""
        cfg = self.config
        out = np.zeros(len(texts), dtype=np.float64)
        bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress)
        for start in range(0, len(texts), cfg.chunk):
            chunk = texts[start : start + cfg.chunk]
            batch = [
                copy
                for text in chunk
                for copy in perturb(text, self.words, text_rng(cfg.seed, text), cfg.copies, cfg.replace_ratio)
            ]
            h = entropy(self.prob_fn(batch)).reshape(len(chunk), cfg.copies)
            out[start : start + len(chunk)] = h.mean(axis=1)
            bar.update(len(chunk))
        bar.close()
        return out

    def calibrate(self, clean_texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Set the threshold to the ``frr`` quantile of clean entropies; returns those entropies."""
        h = self.entropies(clean_texts, progress=progress, desc="STRIP calibration")
        self.threshold = float(np.quantile(h, self.config.frr))
        return h

    def flags(self, entropies: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            raise RuntimeError("calibrate STRIP first")
        return np.asarray(entropies) < self.threshold


class StripDefense(Defense):
    """STRIP as a reject-mode defense: held-out words and threshold from the validation split; a
    judgement's label is the model's own prediction, its score minus the entropy."""

    name = "strip"
    mode = "reject"

    def __init__(
        self,
        prob_fn: ProbabilityFn,
        target: int,
        config: StripConfig | None = None,
        *,
        progress: bool = False,
    ) -> None:
        self.prob_fn = prob_fn
        self.target = target
        self.config = config or StripConfig()
        self.progress = progress
        self.strip: Strip | None = None

    def fit(self, validation: LabeledDataset) -> None:
        """Replacement words from the validation texts of the other classes (all of them if there are
        none), threshold from the entropies of every validation text."""
        texts = list(validation.texts)
        held_out = [t for t, y in zip(texts, validation.labels, strict=True) if y != self.target] or texts
        self.strip = Strip(self.prob_fn, held_out, self.config)
        self.strip.calibrate(texts, progress=self.progress)
        self.threshold = self.strip.threshold

    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        if self.strip is None:
            raise RuntimeError("fit STRIP first")
        labels = self.prob_fn(texts).argmax(axis=1)  # STRIP classifies the input itself too
        h = self.strip.entropies(texts, progress=self.progress, desc="STRIP")
        flags = self.strip.flags(h)
        return [
            Judgement(int(label), bool(flag), float(-entropy_))
            for label, flag, entropy_ in zip(labels, flags, h, strict=True)
        ]

    def details(self) -> dict[str, Any]:
        return {"copies": self.config.copies, "replace_ratio": self.config.replace_ratio}
