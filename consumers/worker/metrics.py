"""What the worker counts: Prometheus metrics in a registry of its own (several workers can live in one
process), plain :class:`WorkerStats` counters and the :class:`BatchReport` passed to ``on_batch``.

``serve_metrics(port, registry)`` exposes ``/metrics`` over HTTP, with ``/healthz`` (liveness) and
``/readyz`` (readiness: :func:`readiness`, read from the registry's own gauges) beside it
(:mod:`consumers.worker.health`).

================================================  =========  ==============================================
metric                                            type       meaning
================================================  =========  ==============================================
stream_guard_consumed_total{topic}                counter    input messages read
stream_guard_produced_total{topic}                counter    outputs acknowledged by the broker
stream_guard_flagged_total                        counter    verdicts over the threshold (audit topic)
stream_guard_dead_letters_total{error}            counter    inputs sent to the dead-letter topic
stream_guard_batch_size                           histogram  messages per scoring batch
stream_guard_scoring_seconds                      histogram  Defender.judge time per batch
stream_guard_end_to_end_seconds                   histogram  input timestamp → output acknowledged
stream_guard_commits_total                        counter    successful offset commits
stream_guard_threshold_value                      gauge      current threshold (NaN when none)
stream_guard_threshold                            info       current threshold version and model id
stream_guard_threshold_updates_total              counter    thresholds applied from the topic
stream_guard_known_trigger_hits_total{trigger}    counter    messages holding that known trigger (removed)
stream_guard_known_triggers                       gauge      known triggers in the set in force
stream_guard_triggers                             info       current known-trigger set version and model id
stream_guard_trigger_updates_total                counter    known-trigger sets applied from the topic
stream_guard_paused                               gauge      1 while input partitions are paused
stream_guard_assigned_partitions                  gauge      input partitions owned by this worker
stream_guard_model_loaded                         gauge      1 once the defender's model is loaded
stream_guard_update_listener_connected{kind}      gauge      1 while the threshold / trigger listener reads
                                                             its topic (0: broker unreachable, retrying)
stream_guard_threshold_age_seconds                gauge      now − created_at of the threshold in force
                                                             (a start value: since it was set; NaN: none)
stream_guard_triggers_age_seconds                 gauge      the same for the known-trigger set in force
stream_guard_updates_rejected_total{kind,reason}  counter    updates ignored: invalid, other_model, unsigned,
                                                             bad_signature, future, not_newer,
                                                             out_of_range, unusable
================================================  =========  ==============================================
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from consumers.worker.health import serve_http

__all__ = ["UPDATE_KINDS", "BatchReport", "WorkerMetrics", "WorkerStats", "readiness", "serve_metrics"]

UPDATE_KINDS = ("threshold", "trigger")

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    """The metric objects of one worker, registered in ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = Counter("stream_guard_consumed", "Input messages read", ["topic"], registry=r)
        self.produced = Counter("stream_guard_produced", "Outputs acknowledged", ["topic"], registry=r)
        self.flagged = Counter("stream_guard_flagged", "Verdicts over the threshold", registry=r)
        self.dead_letters = Counter(
            "stream_guard_dead_letters", "Inputs sent to the dead-letter topic", ["error"], registry=r
        )
        self.batch_size = Histogram(
            "stream_guard_batch_size", "Messages per scoring batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.scoring_seconds = Histogram(
            "stream_guard_scoring_seconds", "Scoring time per batch", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.end_to_end_seconds = Histogram(
            "stream_guard_end_to_end_seconds",
            "Input timestamp to output acknowledged",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.commits = Counter("stream_guard_commits", "Successful offset commits", registry=r)
        self.threshold_value = Gauge("stream_guard_threshold_value", "Current threshold", registry=r)
        self.threshold_value.set(float("nan"))
        self.threshold = Info("stream_guard_threshold", "Current threshold version and model", registry=r)
        self.threshold_updates = Counter(
            "stream_guard_threshold_updates", "Thresholds applied from the topic", registry=r
        )
        self.known_trigger_hits = Counter(
            "stream_guard_known_trigger_hits",
            "Messages holding a known trigger (removed before the verdict), by trigger",
            ["trigger"],
            registry=r,
        )
        self.known_triggers = Gauge("stream_guard_known_triggers", "Known triggers in force", registry=r)
        self.triggers = Info(
            "stream_guard_triggers", "Current known-trigger set version and model", registry=r
        )
        self.trigger_updates = Counter(
            "stream_guard_trigger_updates", "Known-trigger sets applied from the topic", registry=r
        )
        self.paused = Gauge("stream_guard_paused", "1 while input partitions are paused", registry=r)
        self.assigned = Gauge("stream_guard_assigned_partitions", "Input partitions owned", registry=r)
        self.model_loaded = Gauge("stream_guard_model_loaded", "1 once the model is loaded", registry=r)
        self.listener_connected = Gauge(
            "stream_guard_update_listener_connected",
            "1 while the update listener reads its topic",
            ["kind"],
            registry=r,
        )
        self.updates_rejected = Counter(
            "stream_guard_updates_rejected", "Updates ignored, by reason", ["kind", "reason"], registry=r
        )
        self._set_at: dict[str, float | None] = dict.fromkeys(UPDATE_KINDS)  # epoch seconds
        self.threshold_age = Gauge(
            "stream_guard_threshold_age_seconds", "Age of the threshold in force", registry=r
        )
        self.threshold_age.set_function(lambda: self._age("threshold"))
        self.triggers_age = Gauge(
            "stream_guard_triggers_age_seconds", "Age of the known-trigger set in force", registry=r
        )
        self.triggers_age.set_function(lambda: self._age("trigger"))

    def set_threshold(
        self, value: float | None, version: str | None, model_id: str, created_at: datetime | None = None
    ) -> None:
        """The threshold in force; its age counts from ``created_at`` (default: now) while it is set."""
        self.threshold_value.set(float("nan") if value is None else value)
        self.threshold.info({"version": version or "", "model_id": model_id})
        self._since("threshold", value is not None, created_at)

    def set_triggers(
        self, count: int, version: str | None, model_id: str, created_at: datetime | None = None
    ) -> None:
        """The known-trigger set in force (``version`` None: none); its age as for the threshold."""
        self.known_triggers.set(count)
        self.triggers.info({"version": version or "", "model_id": model_id})
        self._since("trigger", version is not None, created_at)

    def count_batch(
        self,
        stats: WorkerStats,
        *,
        size: int,
        scoring_seconds: float | None,
        flagged: int,
        dead: int,
        hits: dict[str, int],
        committed: bool,
    ) -> None:
        """Count one completed batch here and in ``stats``: ``hits`` = messages per known trigger found,
        ``scoring_seconds`` None when nothing was scored, ``committed`` when it committed new offsets."""
        self.flagged.inc(flagged)
        for trigger, count in hits.items():
            self.known_trigger_hits.labels(trigger).inc(count)
        self.batch_size.observe(size)
        if scoring_seconds is not None:
            self.scoring_seconds.observe(scoring_seconds)
        stats.batches += 1
        stats.flagged += flagged
        stats.known_trigger_hits += sum(hits.values())
        stats.dead_letters += dead
        if committed:
            stats.commits += 1
            self.commits.inc()

    def set_connected(self, kind: str, connected: bool) -> None:
        self.listener_connected.labels(kind).set(1 if connected else 0)

    def _since(self, kind: str, present: bool, created_at: datetime | None) -> None:
        stamp = created_at.timestamp() if created_at is not None else time.time()
        self._set_at[kind] = stamp if present else None

    def _age(self, kind: str) -> float:
        since = self._set_at[kind]
        return math.nan if since is None else max(0.0, time.time() - since)


def readiness(registry: CollectorRegistry) -> dict[str, bool]:
    """The worker's readiness, read from its gauges in ``registry``: input partitions assigned, the
    model loaded, a threshold known (without one nothing is ever flagged)."""
    assigned = registry.get_sample_value("stream_guard_assigned_partitions") or 0.0
    loaded = registry.get_sample_value("stream_guard_model_loaded") or 0.0
    threshold = registry.get_sample_value("stream_guard_threshold_value")
    return {
        "assigned": assigned > 0,
        "model_loaded": loaded >= 1,
        "threshold_known": threshold is not None and not math.isnan(threshold),
    }


def _listeners(registry: CollectorRegistry) -> dict[str, Any]:
    """Connection state of the update listeners that run (for the health bodies)."""
    states = {}
    for kind in UPDATE_KINDS:
        value = registry.get_sample_value("stream_guard_update_listener_connected", {"kind": kind})
        if value is not None:
            states[kind] = value >= 1
    return {"update_listeners_connected": states}


def serve_metrics(port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> Any:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread; returns the
    server (call ``shutdown()``)."""
    return serve_http(
        port, registry, lambda: readiness(registry), host=host, details=lambda: _listeners(registry)
    )


@dataclass
class WorkerStats:
    """Plain counters, for in-process users (the Prometheus metrics hold the same and more)."""

    consumed: int = 0
    produced: dict[str, int] = field(default_factory=dict)  # acknowledged outputs per topic
    flagged: int = 0
    dead_letters: int = 0
    batches: int = 0
    commits: int = 0
    threshold_updates: int = 0
    trigger_updates: int = 0
    updates_rejected: int = 0  # threshold and trigger updates ignored (see stream_guard_updates_rejected)
    known_trigger_hits: int = 0  # messages in which a known trigger was found


@dataclass(frozen=True)
class BatchReport:
    """One committed batch, passed to ``on_batch``."""

    size: int
    scored: int
    flagged: int
    dead_letters: int
    scoring_seconds: float
    offsets: dict[tuple[str, int], int]  # committed: next offset to read per input partition
    scoring_started: float | None = None  # time.perf_counter() when its scoring began; None: none scored
