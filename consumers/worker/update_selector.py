"""Which threshold or known-trigger update wins: the selection rule every reader of those topics shares.

An :class:`UpdateKind` says which record a topic carries and how it becomes what the defender takes
(:data:`THRESHOLDS`: a ``ThresholdUpdate`` becomes a ``Threshold``; :data:`TRIGGERS`: a ``TriggerUpdate``
becomes a ``TriggerSet``). :class:`UpdateSelector` (Kafka-free) decides: an update applies when it
decodes, names this model, passes the :class:`~consumers.pipeline.update_policy.UpdatePolicy` (signed
when a key is set, dated at most the allowed skew ahead of this clock, values its calibration summary
and the operator's bounds support) and is newer than the best seen so far by ``(created_at, version)``.
Anything else is ignored with a warning, counted by reason, and the last good update stays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import structlog

from consumers.pipeline.thresholds import threshold_from_update
from consumers.pipeline.triggers import trigger_set_from_update
from consumers.pipeline.update_policy import ORDERING_ONLY, Rejection, UpdatePolicy
from schemas import SchemaError, ThresholdUpdate, TriggerUpdate, decode, utc_now
from stream_guard.threshold import Threshold
from stream_guard.triggers.known import TriggerSet

__all__ = ["REJECTION_REASONS", "THRESHOLDS", "TRIGGERS", "UpdateKind", "UpdateSelector"]

log = structlog.get_logger(__name__)

REJECTION_REASONS = (
    "invalid",
    "other_model",
    "unsigned",
    "bad_signature",
    "future",
    "not_newer",
    "out_of_range",
    "unusable",
)
"""Why an update can be ignored, in the order the selector checks (the metric's ``reason`` label)."""


class _Update(Protocol):
    @property
    def model_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


U = TypeVar("U", bound=_Update)
C = TypeVar("C")


@dataclass(frozen=True)
class UpdateKind(Generic[U, C]):
    """One kind of update: its name in logs, its wire record, and how the defender's value is made
    from it (raising ValueError for an update the core refuses)."""

    name: str
    record: type[U]
    convert: Callable[[U], C]


THRESHOLDS: UpdateKind[ThresholdUpdate, Threshold] = UpdateKind(
    "threshold", ThresholdUpdate, threshold_from_update
)
TRIGGERS: UpdateKind[TriggerUpdate, TriggerSet] = UpdateKind(
    "trigger", TriggerUpdate, trigger_set_from_update
)


class UpdateSelector(Generic[U, C]):
    """Keeps the winning update of ``kind`` for ``model_id``: greatest ``(created_at, version)`` among
    those ``policy`` accepts (by default :data:`~consumers.pipeline.update_policy.ORDERING_ONLY`: the
    ordering alone, as readers that only display updates want; workers pass their settings' policy).

    ``on_reject`` is called with the reason of each ignored update (``invalid``, ``other_model``,
    ``unsigned``, ``bad_signature``, ``future``, ``not_newer``, ``out_of_range``, ``unusable``);
    ``rejected`` counts them too. ``clock`` is the time ``created_at`` is compared with."""

    def __init__(
        self,
        kind: UpdateKind[U, C],
        model_id: str,
        policy: UpdatePolicy = ORDERING_ONLY,
        *,
        on_reject: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.kind = kind
        self.model_id = model_id
        self.policy = policy
        self.best: U | None = None
        self.offered = 0  # values seen, applied or not
        self.rejected: Counter[str] = Counter()
        self._on_reject = on_reject
        self._clock = clock

    def offer(self, value: bytes | None, where: str = "") -> tuple[C, U] | None:
        """The converted value and its update when ``value`` is the new winner, else None (logged)."""
        self.offered += 1
        name = self.kind.name
        try:
            update = decode(self.kind.record, value)
        except SchemaError as error:
            return self._reject(Rejection("invalid", error.reason), where)
        if update.model_id != self.model_id:
            log.warning(
                f"{name} update ignored: other model",
                update_model=update.model_id,
                model=self.model_id,
                version=update.version,
                at=where,
            )
            return self._reject(None, where, reason="other_model")
        policy = self.policy
        rejection = policy.authentic(value) or policy.timely(update.created_at, self._clock())
        if rejection is not None:
            return self._reject(rejection, where, update)
        best = self.best
        if best is not None and (update.created_at, update.version) <= (best.created_at, best.version):
            log.info(f"{name} update ignored: not newer", version=update.version, current=best.version)
            return self._reject(None, where, reason="not_newer")
        rejection = policy.sane(update)
        if rejection is not None:
            return self._reject(rejection, where, update)
        try:
            converted = self.kind.convert(update)
        except ValueError as error:
            return self._reject(Rejection("unusable", " ".join(str(error).split())), where, update)
        self.best = update
        return converted, update

    def _reject(
        self, rejection: Rejection | None, where: str, update: U | None = None, *, reason: str = ""
    ) -> None:
        """Count (and, given a rejection, log) an ignored update; the last good one stays."""
        if rejection is not None:
            reason = rejection.reason
            fields: dict[str, Any] = {"reason": rejection.detail, "at": where}
            if update is not None:
                fields["version"] = update.version
            if self.best is not None:
                fields["current"] = self.best.version
            log.warning(f"{self.kind.name} update ignored: {reason.replace('_', ' ')}", **fields)
        self.rejected[reason] += 1
        if self._on_reject is not None:
            self._on_reject(reason)
        return None
