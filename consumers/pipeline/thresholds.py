"""Threshold updates (the wire contract) as the core's Threshold, for every place that applies one.

The worker's threshold listener applies the updates it reads from the thresholds topic with
:func:`threshold_from_update`; ``stream-guard score`` and ``replay`` apply one written by
``stream-guard calibrate --output`` (:func:`read_threshold_file`, then :func:`threshold_for_model`) the
same way, so their records carry the threshold, ``threshold_version`` and ``min_confidence`` the worker's
would. Kafka-free.
"""

from __future__ import annotations

from pathlib import Path

from consumers.pipeline.update_files import read_update_bytes
from schemas import SchemaError, ThresholdUpdate, decode
from stream_guard.threshold import Threshold

__all__ = ["ThresholdFileError", "read_threshold_file", "threshold_for_model", "threshold_from_update"]

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
