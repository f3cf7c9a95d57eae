"""Calibrate the threshold on clean data: a percentile of the anomaly scores, optionally per length bucket.

The paper takes the 95th percentile (65th for ALBERT) of S on a clean validation set. Because S grows
with text length on small encoders, a single percentile mostly flags long texts; `length_edges` gives
each token-count bucket its own percentile, so every length is flagged at about the same clean rate.
Calibrate on data held apart from any test data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stream_guard.threshold import Threshold

if TYPE_CHECKING:  # the CLI imports this module's defaults without torch
    from stream_guard.defender import Defender

MIN_PER_BUCKET = 30
# Re-chosen with spans (`span_ratio` 0.01) on the validation splits of 18 lab models (`lab choose`,
# docs/lab/choice.md): the 95th percentile with spans leaves a mean ASR of 0.476 over 17 working
# backdoors where the 99th left 0.579, at a mean clean-accuracy cost of 1.00 point on movie sentences
# (the budget) and none on emails and news; on test 0.462 against 0.583 at +0.27 points. The trigger
# memory learns the same triggers after the same messages at either (validation streams); the 95th
# holds the line better for the messages before it does. Earlier: the 99th (docs/lab/stream-choice.md).
DEFAULT_PERCENTILE = 95.0
# With the trigger memory on (a learning worker or replay) the learner does most of the work, and on
# short texts the 95th costs clean accuracy the memory does not need: on 17 movie validation streams
# +0.89 points (7 of 17 over the 1-point target) against +0.21 at the 99th, for a stream ASR* of 0.050
# against 0.059; on test +0.32 against +0.00 (docs/lab/choice.md, "The stream-level defense at the
# default"). On emails and news the 95th costs nothing. What the demo (a learning worker on movie
# sentences) calibrates at, and the README's advice for such deployments.
LEARNING_SHORT_TEXT_PERCENTILE = 99.0


@dataclass(frozen=True)
class Calibration:
    threshold: Threshold
    scores: np.ndarray  # (N,) anomaly scores of the clean texts
    n_tokens: np.ndarray  # (N,) token counts
    percentile: float

    def summary(self) -> dict[str, object]:
        qs = (50, 90, 95, 99)
        return {
            "n_texts": int(self.scores.size),
            "score_mean": float(self.scores.mean()),
            "score_std": float(self.scores.std()),
            "score_min": float(self.scores.min()),
            "score_max": float(self.scores.max()),
            "quantiles": {f"p{q}": float(np.percentile(self.scores, q)) for q in qs},
        }

    def clean_flag_rate(self) -> float:
        """Share of the calibration texts the threshold itself would flag."""
        limits = np.array([self.threshold.for_length(int(n)) for n in self.n_tokens])
        return float((self.scores > limits).mean())


def bucket_thresholds(
    scores: np.ndarray, n_tokens: np.ndarray, percentile: float, edges: Sequence[int]
) -> tuple[list[tuple[int, float]], float]:
    """Per-bucket percentiles; a bucket with fewer than MIN_PER_BUCKET texts merges into the next one."""
    overall = float(np.percentile(scores, percentile))
    buckets: list[tuple[int, float]] = []
    lower = 0
    for edge in sorted(set(edges)):
        inside = (n_tokens > lower) & (n_tokens <= edge)
        if inside.sum() < MIN_PER_BUCKET:
            continue  # too few texts: widen into the next bucket
        buckets.append((edge, float(np.percentile(scores[inside], percentile))))
        lower = edge
    rest = n_tokens > lower
    tail = float(np.percentile(scores[rest], percentile)) if rest.sum() >= MIN_PER_BUCKET else overall
    return buckets, tail


def calibrate(
    defender: Defender,
    texts: Sequence[str],
    *,
    percentile: float = DEFAULT_PERCENTILE,
    length_edges: Sequence[int] | None = None,
    version: str | None = None,
    confidence_quantile: float | None = None,
) -> Calibration:
    """Score clean `texts` and return the threshold at `percentile` (0 < p < 100).

    `confidence_quantile` (0-1) adds a confidence gate: that quantile of the clean texts' prediction
    confidences becomes the threshold's `min_confidence`."""
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    if not texts:
        raise ValueError("calibration needs at least one clean text")
    scored = defender.score(texts)
    scores = np.array([s.anomaly for s in scored], dtype=np.float64)
    n_tokens = np.array([len(s.encoded) for s in scored], dtype=np.int64)
    confidences = np.array([s.probabilities.max() for s in scored], dtype=np.float64)
    return calibration_from_scores(
        scores,
        n_tokens,
        percentile,
        length_edges=length_edges,
        version=version,
        confidences=confidences,
        confidence_quantile=confidence_quantile,
    )


def calibration_from_scores(
    scores: np.ndarray,
    n_tokens: np.ndarray,
    percentile: float,
    *,
    length_edges: Sequence[int] | None = None,
    version: str | None = None,
    confidences: np.ndarray | None = None,
    confidence_quantile: float | None = None,
) -> Calibration:
    """The threshold at `percentile` of already computed clean anomaly scores (N,) with token counts (N,);
    with `confidence_quantile`, the gate at that quantile of the clean `confidences` (N,)."""
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    if scores.size == 0:
        raise ValueError("calibration needs at least one clean text")
    gate = None
    if confidence_quantile is not None:
        if not 0.0 <= confidence_quantile <= 1.0:
            raise ValueError(f"confidence_quantile must be in [0, 1], got {confidence_quantile}")
        if confidences is None or confidences.size != scores.size:
            raise ValueError("a confidence gate needs one confidence per calibration text")
        gate = float(np.quantile(confidences, confidence_quantile))
    if version is None:
        digest = hashlib.sha256(scores.tobytes() + f"{percentile}/{gate}".encode()).hexdigest()[:10]
        version = f"cal-{digest}"
    if length_edges:
        buckets, tail = bucket_thresholds(scores, n_tokens, percentile, length_edges)
        threshold = Threshold(
            value=tail, version=version, percentile=percentile, by_length=tuple(buckets), min_confidence=gate
        )
    else:
        value = float(np.percentile(scores, percentile))
        threshold = Threshold(value=value, version=version, percentile=percentile, min_confidence=gate)
    return Calibration(threshold=threshold, scores=scores, n_tokens=n_tokens, percentile=percentile)
