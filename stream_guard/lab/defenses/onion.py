"""ONION (Qi et al. 2021, "ONION: A Simple and Effective Defense Against Textual Backdoor Attacks").

A trigger word is an outlier in its sentence: taking it out makes the sentence far more fluent. For a
text of words w_1..w_n (split on whitespace, as the paper), with p_0 the perplexity of the whole text
under a causal LM and p_i the perplexity with w_i left out, the **suspicion score** of w_i is

    f_i = p_0 - p_i      (> 0: the text reads better without w_i)

and every word with f_i > t is removed before the text is classified. ONION rewrites every input
and never refuses one, so it is a ``neutralize`` defense: a judgement's label is the model's label of
the cleaned text, ``flagged`` says a word was removed, the score is max_i f_i.

The threshold t (the paper's t_s, its only hyper-parameter) is chosen on the clean validation split
(the authors' code sweeps it on the test sets; we do not). Two rules:

- ``cacc-drop`` (default, the paper's criterion): the smallest candidate t whose cleaning costs the
  model at most ``max_cacc_drop`` of clean validation accuracy; the candidates are percentiles of
  the clean validation words' suspicion scores (the 100th removes nothing, so one always qualifies).
- ``percentile``: t = the ``percentile``-th percentile of the clean validation words' scores.

Cost: a text of n words is n + 1 LM passes (batched across texts, see
:mod:`~stream_guard.lab.defenses.onion_lm`). Only the first ``max_words`` words are scored (the LM
reads those, the rest of the text is kept as is): long emails would otherwise cost O(n²) tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.defenses.base import Defense, Judgement
from stream_guard.lab.inference import ProbabilityFn

PerplexityFn = Callable[[Sequence[str]], np.ndarray]  # texts -> (N,) perplexities
ThresholdRule = Literal["cacc-drop", "percentile"]
CANDIDATE_PERCENTILES = (0, 50, 75, 80, 85, 90, 92.5, 95, 97.5, 99, 99.5, 100)


@dataclass(frozen=True)
class OnionConfig:
    rule: ThresholdRule = "cacc-drop"
    max_cacc_drop: float = 0.02  # cacc-drop: clean validation accuracy the cleaning may cost
    percentile: float = 95.0  # percentile: of the clean validation words' suspicion scores
    candidates: tuple[float, ...] = CANDIDATE_PERCENTILES  # cacc-drop: thresholds tried (percentiles)
    max_words: int = 64  # words scored per text; the LM reads these only
    chunk: int = 8  # texts whose leave-one-out variants go to the LM together (progress steps)
    lm: str | None = None  # the LM's path (None: $STREAM_GUARD_ONION_LM, else the packaged SmolLM2)
    batch_tokens: int = 2048  # padded LM tokens per forward pass

    def __post_init__(self) -> None:
        if self.rule not in ("cacc-drop", "percentile"):
            raise ValueError(f"unknown ONION threshold rule {self.rule!r}: cacc-drop or percentile")
        if not 0 <= self.percentile <= 100 or not all(0 <= p <= 100 for p in self.candidates):
            raise ValueError("ONION percentiles must lie in [0, 100]")
        if self.max_words < 1 or self.chunk < 1:
            raise ValueError("ONION needs max_words >= 1 and chunk >= 1")


@dataclass(frozen=True)
class Suspicion:
    """One text's words and their suspicion scores, (n_words,); -inf where a word is not scored (past
    ``max_words``, or the text's only word: nothing would be left to measure)."""

    text: str
    words: tuple[str, ...]
    scores: np.ndarray
    perplexity: float  # p_0 of the scored words

    @property
    def score(self) -> float:
        """The text's suspiciousness: its highest word score (-inf if no word is scored)."""
        return float(self.scores.max()) if self.scores.size else float("-inf")

    def cleaned(self, threshold: float) -> tuple[str, tuple[str, ...]]:
        """The text without its words scoring above ``threshold`` (words joined by single spaces; the
        text itself if none is removed), and the words removed."""
        keep = ~(self.scores > threshold)
        if keep.all():
            return self.text, ()
        removed = tuple(w for w, k in zip(self.words, keep, strict=True) if not k)
        return " ".join(w for w, k in zip(self.words, keep, strict=True) if k), removed


def leave_one_out(words: Sequence[str]) -> list[str]:
    """The n texts with one of the n words left out, in word order."""
    return [" ".join([*words[:i], *words[i + 1 :]]) for i in range(len(words))]


def suspicions(
    texts: Sequence[str],
    perplexity: PerplexityFn,
    *,
    max_words: int = 64,
    chunk: int = 8,
    progress: bool = False,
    desc: str = "ONION",
) -> list[Suspicion]:
    """Every text's word scores f_i = p_0 - p_i; the whole texts and all their leave-one-out variants
    of ``chunk`` texts at a time go to ``perplexity`` in one call (which batches them)."""
    out: list[Suspicion] = []
    bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress)
    for start in range(0, len(texts), chunk):
        batch = list(texts[start : start + chunk])
        words = [tuple(t.split()) for t in batch]
        queries: list[str] = []
        spans: list[tuple[int, int]] = []  # per text: index of p_0, number of variants
        for w in words:
            scored = w[:max_words]
            spans.append((len(queries), len(scored) if len(scored) > 1 else 0))
            queries.append(" ".join(scored))
            if len(scored) > 1:
                queries.extend(leave_one_out(scored))
        ppl = np.asarray(perplexity(queries), dtype=np.float64) if queries else np.zeros(0)
        for text, w, (at, n) in zip(batch, words, spans, strict=True):
            scores = np.full(len(w), -np.inf)
            scores[:n] = ppl[at] - ppl[at + 1 : at + 1 + n]
            out.append(Suspicion(text, w, scores, float(ppl[at])))
        bar.update(len(words))
    bar.close()
    return out


def word_scores(found: Sequence[Suspicion]) -> np.ndarray:
    """All scored words' suspicion scores, pooled over texts (the distribution t is chosen from)."""
    parts = [s.scores[np.isfinite(s.scores)] for s in found]
    return np.concatenate(parts) if parts else np.zeros(0)


def percentile_threshold(found: Sequence[Suspicion], percentile: float) -> float:
    """The ``percentile``-th percentile of the clean words' scores (+inf if no word is scored)."""
    pooled = word_scores(found)
    return float(np.percentile(pooled, percentile)) if pooled.size else float("inf")


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    percentile: float  # which candidate it is
    accuracy_before: float  # clean validation accuracy of the model alone
    accuracy_after: float  # ... on the texts cleaned at the chosen threshold
    tried: tuple[tuple[float, float, float], ...]  # (percentile, threshold, accuracy after)


def cacc_drop_threshold(
    found: Sequence[Suspicion],
    labels: Sequence[int],
    prob_fn: ProbabilityFn,
    *,
    max_drop: float,
    candidates: Sequence[float] = CANDIDATE_PERCENTILES,
) -> ThresholdChoice:
    """The smallest candidate threshold whose cleaned clean texts lose at most ``max_drop`` accuracy.
    Each distinct text is classified once, whatever the number of candidates."""
    y = np.asarray(labels)
    cache: dict[str, int] = {}

    def accuracy(texts: list[str]) -> float:
        new = list(dict.fromkeys(t for t in texts if t not in cache))
        if new:
            cache.update(zip(new, (int(p) for p in prob_fn(new).argmax(axis=1)), strict=True))
        return float(np.mean([cache[t] == label for t, label in zip(texts, y, strict=True)]))

    before = accuracy([s.text for s in found])
    pooled = word_scores(found)
    tried = []
    for pct in sorted(set(candidates) | {100.0}):
        t = float(np.percentile(pooled, pct)) if pooled.size else float("inf")
        after = accuracy([s.cleaned(t)[0] for s in found])
        tried.append((float(pct), t, after))
        if before - after <= max_drop:
            return ThresholdChoice(t, float(pct), before, after, tuple(tried))
    raise AssertionError("the 100th percentile removes nothing")  # pragma: no cover


class OnionDefense(Defense):
    """ONION as a neutralize-mode defense: threshold from the validation split, then every text is
    cleaned of its outlier words and classified again."""

    name = "onion"
    mode = "neutralize"

    def __init__(
        self,
        prob_fn: ProbabilityFn,
        perplexity: PerplexityFn,
        config: OnionConfig | None = None,
        *,
        progress: bool = False,
    ) -> None:
        self.prob_fn = prob_fn
        self.perplexity = perplexity
        self.config = config or OnionConfig()
        self.progress = progress
        self.choice: ThresholdChoice | None = None

    def _suspicions(self, texts: Sequence[str], desc: str) -> list[Suspicion]:
        cfg = self.config
        return suspicions(
            texts,
            self.perplexity,
            max_words=cfg.max_words,
            chunk=cfg.chunk,
            progress=self.progress,
            desc=desc,
        )

    def fit(self, validation: LabeledDataset) -> None:
        found = self._suspicions(list(validation.texts), "ONION calibration")
        cfg = self.config
        if cfg.rule == "percentile":
            self.threshold = percentile_threshold(found, cfg.percentile)
            return
        self.choice = cacc_drop_threshold(
            found, validation.labels, self.prob_fn, max_drop=cfg.max_cacc_drop, candidates=cfg.candidates
        )
        self.threshold = self.choice.threshold

    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        if self.threshold is None:
            raise RuntimeError("fit ONION first")
        found = self._suspicions(texts, "ONION")
        cleaned = [s.cleaned(self.threshold) for s in found]
        labels = self.prob_fn([text for text, _ in cleaned]).argmax(axis=1) if cleaned else []
        return [
            Judgement(int(label), bool(removed), s.score, evidence=removed)
            for label, (_, removed), s in zip(labels, cleaned, found, strict=True)
        ]

    def details(self) -> dict[str, Any]:
        cfg = self.config
        row: dict[str, Any] = {"onion_rule": cfg.rule, "onion_max_words": cfg.max_words}
        if cfg.rule == "percentile":
            row["onion_percentile"] = cfg.percentile
        if self.choice is not None:
            row["onion_percentile"] = self.choice.percentile
            row["onion_val_cacc_drop"] = round(self.choice.accuracy_before - self.choice.accuracy_after, 4)
        return row
