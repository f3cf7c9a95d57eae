"""The threshold update published by the calibration job (thresholds topic).

The worker keeps the latest update per ``model_id`` (the one with the greatest ``created_at``; ties
broken by ``version``) and flags a text when its anomaly score exceeds ``threshold_for(n_tokens)``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from itertools import pairwise
from typing import Self

from pydantic import Field, model_validator

from schemas.base import FiniteFloat, OutputRecord, Probability, UtcDatetime, WireModel
from schemas.signing import SIGNATURE_PATTERN


class LengthBucket(WireModel):
    """Threshold for texts of at most ``max_tokens`` tokens."""

    max_tokens: int = Field(ge=1)
    value: FiniteFloat


class CalibrationSummary(WireModel):
    """What the threshold was calibrated on: the clean dataset and its anomaly-score distribution.

    ``quantiles`` maps a percentile written as text (e.g. ``"50"``, ``"95"``, ``"99.9"``) to the score.
    ``score_min`` / ``score_max`` (written since signed updates; None in older records) bound every
    clean score, hence every threshold calibrated on them: a worker rejects an update whose values lie
    outside (docs/reliability/update-channel.md).
    """

    dataset: str = Field(min_length=1)
    n_texts: int = Field(ge=1)
    score_mean: FiniteFloat
    score_std: FiniteFloat = Field(ge=0.0)
    quantiles: dict[str, FiniteFloat] = Field(default_factory=dict)
    score_min: FiniteFloat | None = None
    score_max: FiniteFloat | None = None


class LearnBar(WireModel):
    """The trigger learner's insertion bars measured on this model (``calibrate --scan-bar``).

    The scan inserted ordinary words of clean traffic into clean texts (the learner's own test); the
    strongest (``strongest``) turned ``ceiling`` of another label's texts. ``min_insertion_rate_unseen``
    is the bar ``margin`` above it, for a single word in no clean text; ``min_insertion_rate``, when
    present, raises the bar of every candidate (ordinary words reached above the default 90 %). A bar
    under 0.5 is refused: it would let an attacker get ordinary words learned.
    """

    min_insertion_rate_unseen: float = Field(ge=0.5, le=1.0, allow_inf_nan=False)
    min_insertion_rate: float | None = Field(default=None, ge=0.5, le=1.0, allow_inf_nan=False)
    ceiling: Probability
    strongest: str | None = None
    words: int = Field(ge=0)
    margin: Probability


class ThresholdUpdate(OutputRecord):
    """A new anomaly-score threshold for one model.

    ``value`` is the ``percentile``-th percentile of clean calibration scores. ``by_length``, when
    given, is a length-aware threshold: buckets sorted by strictly ascending ``max_tokens``; a text of
    ``n`` tokens uses the first bucket with ``n <= max_tokens``, and ``value`` past the last bucket.
    """

    model_id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    value: FiniteFloat
    percentile: float = Field(gt=0.0, lt=100.0, allow_inf_nan=False)
    by_length: list[LengthBucket] | None = Field(default=None, min_length=1)
    # a flag also needs the prediction's confidence >= this (a quantile of clean confidences); optional
    min_confidence: Probability | None = None
    calibration: CalibrationSummary
    # the learner's bars measured on this model; None: the learner's own (STREAM_GUARD_LEARN_*)
    learn_bar: LearnBar | None = None
    created_at: UtcDatetime
    # HMAC-SHA256 of the other fields (schemas.signing); None: unsigned (a worker with a key refuses it)
    signature: str | None = Field(default=None, pattern=SIGNATURE_PATTERN)

    @model_validator(mode="after")
    def _buckets_sorted(self) -> Self:
        buckets = self.by_length or []
        for prev, cur in pairwise(buckets):
            if cur.max_tokens <= prev.max_tokens:
                raise ValueError(
                    "by_length must be sorted by strictly ascending max_tokens "
                    f"({prev.max_tokens} then {cur.max_tokens})"
                )
        return self

    def threshold_for(self, n_tokens: int) -> float:
        """The threshold that applies to a text of ``n_tokens`` tokens."""
        if n_tokens < 0:
            raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
        for bucket in self.by_length or ():
            if n_tokens <= bucket.max_tokens:
                return bucket.value
        return self.value


def make_threshold_version(created_at: datetime, *parts: object) -> str:
    """A unique, sortable version string: UTC timestamp + short hash of ``parts``.

    E.g. ``make_threshold_version(now, model_id, value, percentile)`` →
    ``"20250101T120000.000000Z-1a2b3c4d"``.
    """
    stamp = created_at.astimezone(UTC) if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    digest = hashlib.sha256(repr((stamp.isoformat(), *parts)).encode()).hexdigest()[:8]
    return f"{stamp:%Y%m%dT%H%M%S.%fZ}-{digest}"
