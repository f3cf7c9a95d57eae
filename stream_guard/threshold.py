"""The decision threshold: a value, optionally per text-length bucket, and the version that names it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    """A text with anomaly score S is flagged when S > `for_length(n_tokens)`.

    `by_length` holds (max_tokens, value) pairs sorted by max_tokens: a text of n tokens uses the first
    bucket with n <= max_tokens, and `value` past the last one. Empty means one value for all lengths.
    """

    value: float
    version: str = "static"
    percentile: float | None = None
    by_length: tuple[tuple[int, float], ...] = ()
    # a flag also needs the original prediction's confidence (max probability) >= this (None: no gate);
    # calibrated as a quantile of clean confidences (docs/lab/research.md §2: for models whose clean
    # predictions are not saturated)
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        values = [self.value, *(v for _, v in self.by_length)]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"threshold values must be finite, got {values}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        bounds = [b for b, _ in self.by_length]
        if bounds != sorted(set(bounds)):
            raise ValueError(f"length buckets must be strictly increasing, got {bounds}")

    def passes_gate(self, confidence: float) -> bool:
        """Whether a prediction this confident may be flagged (always, without a gate)."""
        return self.min_confidence is None or confidence >= self.min_confidence

    def for_length(self, n_tokens: int) -> float:
        for max_tokens, value in self.by_length:
            if n_tokens <= max_tokens:
                return value
        return self.value

    @classmethod
    def static(cls, value: float) -> Threshold:
        return cls(value=float(value), version=f"static:{value:g}")

    @classmethod
    def from_buckets(
        cls, buckets: Sequence[tuple[int, float]], default: float, *, version: str, percentile: float
    ) -> Threshold:
        return cls(value=default, version=version, percentile=percentile, by_length=tuple(buckets))
