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

    def __post_init__(self) -> None:
        values = [self.value, *(v for _, v in self.by_length)]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"threshold values must be finite, got {values}")
        bounds = [b for b, _ in self.by_length]
        if bounds != sorted(set(bounds)):
            raise ValueError(f"length buckets must be strictly increasing, got {bounds}")

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
