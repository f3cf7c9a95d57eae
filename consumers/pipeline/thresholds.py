"""Threshold updates (the wire contract) as the core's Threshold, for every place that applies one.

The worker's threshold listener applies the updates it reads from the thresholds topic with
:func:`threshold_from_update`; ``stream-guard score`` and ``replay`` apply one written by
``stream-guard calibrate --output`` (:func:`read_threshold_file`, then :func:`threshold_for_model`) the
same way, so their records carry the threshold, ``threshold_version`` and ``min_confidence`` the worker's
would. Kafka-free. A threshold update may also carry the trigger learner's measured insertion bar
(``calibrate --scan-bar``): :func:`learn_rule_for` is the rule every learning process takes from it.
"""

from __future__ import annotations

from pathlib import Path

from consumers.pipeline.update_files import read_update_bytes
from schemas import SchemaError, ThresholdUpdate, decode
from stream_guard.threshold import Threshold
from stream_guard.triggers.learn_settings import learn_rule
from stream_guard.triggers.rule import LearnRule

__all__ = [
    "ThresholdFileError",
    "learn_bar_values",
    "learn_rule_for",
    "read_threshold_file",
    "threshold_for_model",
    "threshold_from_update",
]

MAX_FILE_BYTES = 1_000_000  # a ThresholdUpdate is a few kB even with many length buckets


class ThresholdFileError(ValueError):
    """A threshold file that cannot be applied; the message is one line, for the user."""


def threshold_from_update(update: ThresholdUpdate) -> Threshold:
    """The core's Threshold for a validated update (length buckets and confidence gate included).

    Raises ValueError when the core rejects a value the schema let through."""
    buckets = tuple((b.max_tokens, b.value) for b in update.by_length or ())
    return Threshold(
        value=update.value,
        version=update.version,
        percentile=update.percentile,
        by_length=buckets,
        min_confidence=update.min_confidence,
    )


def read_threshold_file(path: str | Path) -> ThresholdUpdate:
    """The ThresholdUpdate in a JSON file, as ``stream-guard calibrate --output`` writes it.

    Raises ThresholdFileError for a missing or unreadable file, one that is not JSON (NaN and Infinity
    are not JSON), and one that is not a valid update (a value out of range, unsorted length buckets)."""
    data = read_update_bytes(path, "threshold file", ThresholdFileError, MAX_FILE_BYTES)
    try:
        update = decode(ThresholdUpdate, data)
        threshold_from_update(update)  # what the core would refuse, refused now
    except SchemaError as error:
        raise ThresholdFileError(f"invalid threshold file {path}: {error.reason}") from None
    except ValueError as error:
        raise ThresholdFileError(f"invalid threshold file {path}: {' '.join(str(error).split())}") from None
    return update


def threshold_for_model(
    update: ThresholdUpdate, model_id: str, *, source: str = "threshold update"
) -> Threshold:
    """The update as a Threshold for the model ``model_id``: as the worker's listener does, an update
    applies only to the model it was calibrated for (ThresholdFileError otherwise)."""
    if update.model_id != model_id:
        raise ThresholdFileError(
            f"{source} is for model {update.model_id!r}, not the loaded model {model_id!r}"
        )
    try:
        return threshold_from_update(update)
    except ValueError as error:
        raise ThresholdFileError(f"{source}: {' '.join(str(error).split())}") from None


def learn_bar_values(update: ThresholdUpdate | None) -> dict[str, float]:
    """The :class:`~stream_guard.triggers.rule.LearnRule` fields an update's measured bar sets (none
    when it has no ``learn_bar``)."""
    bar = update.learn_bar if update is not None else None
    if bar is None:
        return {}
    values = {"min_insertion_rate_unseen": bar.min_insertion_rate_unseen}
    if bar.min_insertion_rate is not None:
        values["min_insertion_rate"] = bar.min_insertion_rate
    return values


def learn_rule_for(update: ThresholdUpdate | None) -> LearnRule:
    """The learner's rule: ``STREAM_GUARD_LEARN_*``, then the update's measured bar, then the defaults."""
    return learn_rule(learn_bar_values(update))
