"""The worker's hot-reloaded state: the threshold and the known-trigger set its defender judges with.

The start values (``WorkerSettings.threshold``, the ``triggers_file`` or a given set) are applied when
the worker is built; :meth:`DefenderUpdates.start_listeners` then follows the thresholds and triggers
topics (:mod:`consumers.worker.update_listener`) and swaps each newer update into the defender, counting
it in the worker's stats and metrics. Which updates may apply is ``settings.update_channel``'s policy
(signature, skew, value sanity: :mod:`consumers.pipeline.update_policy`); the ignored ones are counted
by reason, and each listener's connection state is a gauge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from consumers.pipeline.triggers import read_trigger_file, trigger_set_for_model
from consumers.worker.metrics import WorkerMetrics, WorkerStats
from consumers.worker.settings import WorkerSettings
from consumers.worker.update_listener import THRESHOLDS, TRIGGERS, UpdateKind, UpdateListener
from schemas import ThresholdUpdate, TriggerUpdate
from stream_guard.defender import Defender
from stream_guard.threshold import Threshold
from stream_guard.triggers.known import TriggerSet

__all__ = ["DefenderUpdates"]

log = structlog.get_logger(__name__)


class DefenderUpdates:
    """Applies the start threshold and trigger set, then follows their topics (see the module docstring).

    ``triggers`` is the start known-trigger set; by default ``settings.triggers_file``'s, if any. It
    must name the defender's model (:class:`~consumers.pipeline.triggers.TriggerFileError` otherwise).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        defender: Defender,
        metrics: WorkerMetrics,
        stats: WorkerStats,
        *,
        triggers: TriggerUpdate | None = None,
    ) -> None:
        self.settings = settings
        self.defender = defender
        self.metrics = metrics
        self.stats = stats
        metrics.model_loaded.set(1)  # a defender exists: its model is loaded
        start = settings.threshold if settings.threshold is not None else settings.defender.threshold
        if start is not None:
            defender.set_threshold(Threshold.static(start))
        self._update_threshold_metrics()
        # in a learning worker, sets from the topic go to its learning first (run --learn-triggers)
        self.on_triggers: Callable[[TriggerUpdate], None] | None = None
        # ... and threshold updates too: one may carry the learner's measured bar (calibrate --scan-bar)
        self.on_threshold: Callable[[ThresholdUpdate], None] | None = None
        if triggers is None and settings.triggers_file is not None:
            triggers = read_trigger_file(settings.triggers_file)
        if triggers is not None:
            where = (
                f"trigger file {settings.triggers_file}" if settings.triggers_file else "start trigger set"
            )
            defender.set_triggers(trigger_set_for_model(triggers, defender.model_id, source=where))
        self.start_triggers = triggers
        self.refresh_trigger_metrics()

    def start_listeners(self) -> list[UpdateListener[Any, Any]]:
        """One listener per followed topic (thresholds, triggers); waits, together at most
        ``threshold_startup_wait_s``, until they have read their topics to the end."""
        settings = self.settings
        listeners: list[UpdateListener[Any, Any]] = []
        if settings.thresholds_topic is not None:
            listeners.append(self._listener(settings.thresholds_topic, THRESHOLDS, self.apply_threshold))
        if settings.triggers_topic is not None:
            listeners.append(self._listener(settings.triggers_topic, TRIGGERS, self.apply_triggers))
        deadline = time.monotonic() + settings.threshold_startup_wait_s
        for listener in listeners:
            if not listener.wait_caught_up(max(0.0, deadline - time.monotonic())):
                log.warning(
                    f"{listener.kind.name}s topic not read to its end in time; starting anyway",
                    topic=listener.topic,
                )
        if settings.thresholds_topic is not None and self.defender.threshold is None:
            log.warning("no threshold yet: nothing is flagged until one is published or set")
        return listeners

    def _listener(self, topic: str, kind: UpdateKind[Any, Any], apply: Any) -> UpdateListener[Any, Any]:
        metrics, name = self.metrics, kind.name
        metrics.set_connected(name, False)
        policy = self.settings.update_channel.policy()
        if policy.signed:
            log.info(f"{name} updates must be signed", topic=topic)
        return UpdateListener(
            self.settings.kafka,
            topic,
            self.defender.model_id,
            kind,
            apply,
            policy=policy,
            on_reject=lambda reason: self._rejected(name, reason),
            on_connected=lambda connected: metrics.set_connected(name, connected),
        ).start()

    def _rejected(self, kind: str, reason: str) -> None:
        self.stats.updates_rejected += 1
        self.metrics.updates_rejected.labels(kind, reason).inc()

    def apply_threshold(self, threshold: Threshold, update: ThresholdUpdate) -> None:
        self.defender.set_threshold(threshold)
        if self.on_threshold is not None:
            self.on_threshold(update)
        self.stats.threshold_updates += 1
        self.metrics.threshold_updates.inc()
        self._update_threshold_metrics(update.created_at)
        log.info(
            "threshold applied",
            version=update.version,
            value=update.value,
            percentile=update.percentile,
            created_at=update.created_at.isoformat(),
        )

    def apply_triggers(self, triggers: TriggerSet, update: TriggerUpdate) -> None:
        if self.on_triggers is not None:
            self.on_triggers(update)  # merged with what this worker learned, before its next batch
        else:
            self.defender.set_triggers(triggers)
        self.stats.trigger_updates += 1
        self.metrics.trigger_updates.inc()
        self.refresh_trigger_metrics(update.created_at)
        log.info(
            "known triggers applied",
            version=update.version,
            triggers=len(update.triggers),
            revoked=len(update.revoked),
            created_at=update.created_at.isoformat(),
        )

    def refresh_trigger_metrics(self, created_at: datetime | None = None) -> None:
        triggers = self.defender.triggers
        self.metrics.set_triggers(
            len(triggers) if triggers else 0,
            triggers.version if triggers else None,
            self.defender.model_id,
            created_at,
        )

    def _update_threshold_metrics(self, created_at: datetime | None = None) -> None:
        threshold = self.defender.threshold
        self.metrics.set_threshold(
            threshold.value if threshold else None,
            threshold.version if threshold else None,
            self.defender.model_id,
            created_at,
        )
