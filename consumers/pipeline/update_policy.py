"""Which threshold and trigger updates a worker may apply: authentic, not from the future, sane.

An :class:`UpdatePolicy` holds the rules; :meth:`UpdatePolicy.authentic`, :meth:`UpdatePolicy.timely` and
:meth:`UpdatePolicy.sane` each return None for an update that passes, or a :class:`Rejection` (a short
``reason`` for metrics, a one-line ``detail`` for the log). The update listener asks them in that
order, with the newest-wins ordering between ``timely`` and ``sane``
(:class:`consumers.worker.update_listener.UpdateSelector`).

* **authentic** — with a ``key``, only updates carrying a valid HMAC-SHA256 signature over their wire
  bytes (:mod:`schemas.signing`); without one, anything (as before signatures existed).
* **timely** — ``created_at`` at most ``max_skew_s`` ahead of this machine's clock. Updates are ordered
  by ``(created_at, version)``, so one dated in 2100 would win over every later update, for ever (the
  topic is re-read on every start): it is refused instead. Clock skew up to the bound is tolerated.
* **sane** — the values lie where the update's own calibration summary and the operator's bounds allow
  (:mod:`consumers.pipeline.update_sanity`); a trigger set is not larger than ``max_known_triggers``.

Kafka-free; the key is never part of a repr or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from consumers.pipeline.update_sanity import threshold_problem, trigger_set_problem
from schemas import SignatureCheck, ThresholdUpdate, TriggerUpdate, verify_update

__all__ = ["DEFAULT_MAX_SKEW_S", "ORDERING_ONLY", "Rejection", "UpdatePolicy"]

DEFAULT_MAX_SKEW_S = 300.0


@dataclass(frozen=True)
class Rejection:
    """Why an update is not applied: ``reason`` (a metric label) and ``detail`` (one line, no secret)."""

    reason: str
    detail: str


@dataclass(frozen=True)
class UpdatePolicy:
    """The rules (see the module docstring). ``UpdatePolicy()`` checks time and values, not signatures.

    Args:
        key: the shared HMAC key; None: signatures are not required (nor checked).
        max_skew_s: how far ``created_at`` may lie ahead of the clock; None: no limit.
        threshold_min, threshold_max: operator bounds on every threshold value; None: unbounded.
        max_known_triggers: the most triggers a set may hold; None: no limit.
        check_summary: whether threshold values must fit their calibration summary.
    """

    key: bytes | None = field(default=None, repr=False)
    max_skew_s: float | None = DEFAULT_MAX_SKEW_S
    threshold_min: float | None = None
    threshold_max: float | None = None
    max_known_triggers: int | None = 10_000
    check_summary: bool = True

    @property
    def signed(self) -> bool:
        """Whether only signed updates are applied."""
        return self.key is not None

    def authentic(self, raw: bytes | None) -> Rejection | None:
        """None when no key is set or ``raw`` (the update's wire bytes) carries a valid signature."""
        if self.key is None:
            return None
        check = verify_update(raw or b"", self.key)
        if check is SignatureCheck.VALID:
            return None
        if check is SignatureCheck.UNSIGNED:
            return Rejection("unsigned", "unsigned, and this worker applies only signed updates")
        return Rejection("bad_signature", "signature does not match (wrong key, or changed after signing)")

    def timely(self, created_at: datetime, now: datetime) -> Rejection | None:
        """None unless ``created_at`` lies more than ``max_skew_s`` after ``now``."""
        if self.max_skew_s is None:
            return None
        ahead = created_at - now
        if ahead > timedelta(seconds=self.max_skew_s):
            return Rejection(
                "future",
                f"created_at {created_at.isoformat()} is {ahead.total_seconds():.0f} s ahead of this "
                f"clock (the limit is {self.max_skew_s:g} s)",
            )
        return None

    def sane(self, update: object) -> Rejection | None:
        """None when a threshold's values or a trigger set's size are acceptable."""
        problem: str | None = None
        if isinstance(update, ThresholdUpdate):
            problem = threshold_problem(
                update, minimum=self.threshold_min, maximum=self.threshold_max, summary=self.check_summary
            )
        elif isinstance(update, TriggerUpdate):
            problem = trigger_set_problem(update, max_triggers=self.max_known_triggers)
        return None if problem is None else Rejection("out_of_range", problem)


ORDERING_ONLY = UpdatePolicy(max_skew_s=None, max_known_triggers=None, check_summary=False)
"""No rule but the newest-wins ordering: what readers that only display updates use."""
