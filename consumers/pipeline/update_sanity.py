"""Value sanity of threshold and trigger updates: what an update may set, whoever signed it.

A threshold is a percentile of clean calibration scores, so every value it carries (``value`` and each
length bucket's) lies between the smallest and the largest of those scores. The update's own
:class:`~schemas.CalibrationSummary` bounds them:

* ``score_min`` / ``score_max`` when it has them (written by ``stream-guard calibrate``): exact;
* otherwise Samuelson's inequality: ``n`` numbers with mean ``m`` and (population) standard deviation
  ``s`` all lie within ``m ± s·√(n−1)``;
* without length buckets ``value`` is the ``percentile``-th percentile of all the scores, and percentiles
  grow with the percentile: it lies between the summary's quantiles on either side of ``percentile``.

A summary that contradicts itself (quantiles that decrease, or lie outside ``[score_min, score_max]``;
a mean outside them; a spread wider than they allow) supports nothing. Operator bounds
(``STREAM_GUARD_THRESHOLD_MIN`` / ``_MAX``) apply on top, to every value. A trigger set may hold at most
``max_triggers`` triggers.

Each check returns None when the update passes, or one line saying why not. Kafka-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import pairwise

from schemas import CalibrationSummary, ThresholdUpdate, TriggerUpdate

__all__ = ["supported_range", "threshold_problem", "trigger_set_problem"]

_REL_TOL = 1e-9  # the same numbers computed twice by numpy compare equal; this absorbs JSON round trips


def _slack(*values: float) -> float:
    return _REL_TOL * max(1.0, *(abs(v) for v in values))


def _quantiles(summary: CalibrationSummary) -> list[tuple[float, float]] | str:
    """The summary's quantiles as sorted (percentile, score) pairs, or why they cannot be."""
    pairs: list[tuple[float, float]] = []
    for name, score in summary.quantiles.items():
        try:
            percentile = float(name)
        except ValueError:
            return f"calibration quantile {name!r} is not a percentile"
        if not 0.0 <= percentile <= 100.0:
            return f"calibration quantile {name!r} is not a percentile"
        pairs.append((percentile, score))
    pairs.sort()
    for (p1, q1), (p2, q2) in pairwise(pairs):
        if q2 < q1 - _slack(q1, q2):
            return f"calibration quantiles decrease (p{p1:g} {q1:g} > p{p2:g} {q2:g})"
    return pairs


def supported_range(summary: CalibrationSummary) -> tuple[float, float] | str:
    """``(low, high)``: where every clean score of the summary lies; or why the summary is inconsistent."""
    pairs = _quantiles(summary)
    if isinstance(pairs, str):
        return pairs
    mean, std, n = summary.score_mean, summary.score_std, summary.n_texts
    low, high = summary.score_min, summary.score_max
    if low is None or high is None:
        half = std * math.sqrt(n - 1)
        if not math.isfinite(half):
            return "calibration summary spread is not finite"
        return mean - half, mean + half
    slack = _slack(low, high, mean)
    if low > high:
        return f"calibration score_min {low:g} > score_max {high:g}"
    if not low - slack <= mean <= high + slack:
        return f"calibration mean {mean:g} outside [score_min, score_max] = [{low:g}, {high:g}]"
    if std > (high - low) / 2 + slack:  # Popoviciu: no spread wider than half the range
        return f"calibration std {std:g} wider than [score_min, score_max] = [{low:g}, {high:g}] allows"
    for percentile, score in pairs:
        if not low - slack <= score <= high + slack:
            return f"calibration quantile p{percentile:g} = {score:g} outside [{low:g}, {high:g}]"
    return low, high


def _values(update: ThresholdUpdate) -> list[float]:
    return [update.value, *(bucket.value for bucket in update.by_length or ())]


def _outside(values: Iterable[float], low: float | None, high: float | None) -> float | None:
    for value in values:
        if (low is not None and value < low) or (high is not None and value > high):
            return value
    return None


def threshold_problem(
    update: ThresholdUpdate,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    summary: bool = True,
) -> str | None:
    """Why ``update``'s values lie outside the operator's ``[minimum, maximum]`` or (``summary``) cannot
    be a threshold calibrated on its summary; None when they can."""
    values = _values(update)
    if any(not math.isfinite(v) for v in values):  # the schema refuses them; a hand-built model may not
        return "value is not finite"
    wrong = _outside(values, minimum, maximum)
    if wrong is not None:
        return f"value {wrong:g} outside the operator's bounds [{minimum}, {maximum}]"
    if not summary:
        return None
    supported = supported_range(update.calibration)
    if isinstance(supported, str):
        return supported
    low, high = supported
    slack = _slack(low, high)
    wrong = _outside(values, low - slack, high + slack)
    if wrong is not None:
        return f"value {wrong:g} outside [{low:g}, {high:g}], the clean scores its calibration describes"
    if not update.by_length:
        return _percentile_problem(update)
    return None


def _percentile_problem(update: ThresholdUpdate) -> str | None:
    """Without buckets ``value`` is the ``percentile``-th percentile: between the neighbouring quantiles."""
    pairs = _quantiles(update.calibration)
    assert not isinstance(pairs, str)  # checked by supported_range
    p, value = update.percentile, update.value
    below = [q for percentile, q in pairs if percentile <= p]
    above = [q for percentile, q in pairs if percentile >= p]
    if below and value < below[-1] - _slack(value, below[-1]):
        return f"value {value:g} below its summary's quantile {below[-1]:g} under percentile {p:g}"
    if above and value > above[0] + _slack(value, above[0]):
        return f"value {value:g} above its summary's quantile {above[0]:g} over percentile {p:g}"
    return None


def trigger_set_problem(update: TriggerUpdate, *, max_triggers: int | None) -> str | None:
    """Why a trigger set is too large to apply; None when it is not."""
    if max_triggers is not None and len(update.triggers) > max_triggers:
        return f"{len(update.triggers)} triggers, over the limit of {max_triggers}"
    return None
