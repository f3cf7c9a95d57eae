"""The scoring worker: input topics → validate → micro-batch → Defender → predictions / audit / dead letters.

Acks
    Outputs are produced by an idempotent producer with ``acks=all``: a record counts as written only
    when every in-sync replica has it, and librdkafka's retries can neither duplicate nor reorder it.
    Every output carries the input's key (same key → same output partition, in input order) and a
    ``source`` of topic/partition/offset. A message's outputs are produced in input order, dead letters
    included (they travel through the batch like any other message).

Commits
    Auto-commit is off. After each batch the worker runs the checkpoint (:mod:`consumers.worker.checkpoint`):
    flush the producer → check every delivery callback → commit, synchronously, the offset after the
    last message of the batch for each partition. A dead letter counts as processed. If a delivery
    fails the worker raises :class:`~consumers.worker.checkpoint.DeliveryError` and stops *without*
    committing (``stream-guard run`` exits 1): the batch is read again after a restart. So delivery is
    **at-least-once**: a crash between produce and commit repeats at most the uncommitted batch,
    nothing is ever skipped. ``transactional=True`` turns the checkpoint into a Kafka transaction
    (outputs + offsets commit atomically; read_committed readers see each output once).

Rebalances
    Cooperative-sticky: only the partitions that move are revoked. On revoke the worker first finishes
    the batch in hand (waits for the scorer, produces, flushes, commits — offsets of the revoked
    partitions included), then drops the not-yet-scored messages of the revoked partitions from its
    accumulator; they are uncommitted, so their new owner reads them. Lost partitions (session timed
    out) cannot be committed: their pending work is dropped and their outputs are not produced.

Flow control
    Scoring runs on the process's torch thread (:mod:`stream_guard.torch_thread`: every model call of
    the process runs on that one thread, so torch keeps a single OpenMP pool, which is ~15% faster on
    few cores than a pool per thread); the main loop never stops polling, so heartbeats, rebalance
    callbacks and ``max.poll.interval.ms`` stay served however long a batch takes; input partitions
    are paused while ``buffer_batches`` batches wait (:mod:`consumers.worker.flow_control`). When a
    batch is scored the scorer is handed the next one before the finished batch is produced, flushed
    and committed, so those broker round trips overlap scoring too; outputs and commits still follow
    batch order.

Shutdown
    ``stop()`` (SIGTERM/SIGINT in ``stream-guard run``) ends the loop; the worker finishes the batch in
    flight, flushes, commits, closes the consumer (leaving the group) and returns. Messages buffered but
    not yet scored are not committed: the next owner of their partitions reads them. A SIGKILL loses
    nothing either: at most the uncommitted batch is produced again (duplicates) after the restart.

Thresholds and known triggers
    Two :class:`~consumers.worker.update_listener.UpdateListener` threads follow the thresholds topic and
    the triggers topic and swap ``defender.set_threshold`` / ``defender.set_triggers`` when a newer update
    for this model arrives; each ``judge`` call reads both once, so every verdict (and record) carries the
    ``threshold_version`` and ``trigger_version`` it was judged with. ``settings.threshold`` and
    ``settings.triggers_file`` (or ``triggers=``) are only the start values.

In-process use (tests, the bench, the demo)::

    worker = Worker(WorkerSettings(...), defender=defender)
    thread = threading.Thread(target=worker.run)
    thread.start(); worker.wait_assigned(30)
    ...
    worker.stop(); thread.join()
    worker.stats  # counters; or on_batch=callback for a BatchReport per batch
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any

import structlog

from consumers.pipeline.envelope import Envelope
from consumers.pipeline.judge import JudgedBatch
from consumers.pipeline.message_path import Admitted, MessagePipeline
from consumers.pipeline.wire import message_max_bytes
from consumers.worker.checkpoint import Checkpoint
from consumers.worker.clients import make_clients
from consumers.worker.flow_control import FlowControl
from consumers.worker.learning import worker_learning
from consumers.worker.metrics import BatchReport, WorkerMetrics, WorkerStats, serve_metrics
from consumers.worker.settings import WorkerSettings
from consumers.worker.token_count import budget_can_bind
from consumers.worker.update_listener import UpdateListener
from consumers.worker.updates import DefenderUpdates
from schemas import TriggerUpdate
from stream_guard.batching import BatchLimits, MicroBatcher
from stream_guard.defender import Defender
from stream_guard.torch_thread import submit_to_torch_thread

__all__ = ["BatchReport", "Worker", "WorkerStats"]

log = structlog.get_logger(__name__)

_POLL_S = 0.1
_BUSY_WAIT_S = 0.02


class Worker:
    """One scoring-worker instance (one consumer-group member). See the module docstring.

    Args:
        settings: topics, batching, Kafka and defender settings.
        defender: a ready Defender; built from ``settings.defender`` when None.
        metrics: where to count; a fresh registry by default (served when ``settings.metrics_port``).
        on_batch: called in the worker's thread after each committed batch.
        triggers: the start known-trigger set; by default ``settings.triggers_file``'s, if any. It must
            name the defender's model (:class:`~consumers.pipeline.triggers.TriggerFileError` otherwise).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        defender: Defender | None = None,
        *,
        metrics: WorkerMetrics | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
        triggers: TriggerUpdate | None = None,
    ) -> None:
        self.settings = settings
        self.defender = defender or Defender.from_settings(settings.defender)
        self.metrics = metrics or WorkerMetrics()
        self.stats = WorkerStats()
        self.on_batch = on_batch
        self.updates = DefenderUpdates(settings, self.defender, self.metrics, self.stats, triggers=triggers)
        # an output over the producer's message.max.bytes is dead-lettered, not produced
        producer_config = settings.kafka.producer_config(**settings.producer_overrides)
        self.pipeline = MessagePipeline(
            self.defender,
            max_bytes=settings.max_message_bytes,
            max_output_bytes=message_max_bytes(producer_config),
        )
        self.learning = (
            worker_learning(self.pipeline, settings, self.updates.start_triggers)
            if settings.learn_triggers
            else None
        )
        if self.learning is not None:
            self.updates.on_triggers = self.learning.follow
            self.updates.on_threshold = self.learning.follow_threshold
        self._judge = self.learning.judge_batch if self.learning is not None else self.pipeline.judge
        self._batcher: MicroBatcher[Admitted] = MicroBatcher(
            BatchLimits(settings.max_batch_size, settings.max_batch_tokens, settings.max_wait_s)
        )
        self._max_length = self.defender.classifier.max_length
        self._count_tokens = budget_can_bind(
            self._max_length, settings.max_batch_size, settings.max_batch_tokens
        )
        self._topics = {
            "prediction": settings.predictions_topic,
            "audit": settings.audit_topic,
            "dead_letter": settings.dead_letter_topic,
        }
        self._stop = threading.Event()
        self._assigned_event = threading.Event()
        self._assigned: set[tuple[str, int]] = set()
        self._inflight: Future[JudgedBatch] | None = None
        self._inflight_items: list[Admitted] = []
        self._flow = FlowControl(settings.buffer_batches * settings.max_batch_size, self.metrics.paused.set)
        self._failed = False
        self._consumer: Any = None
        self._checkpoint: Checkpoint | None = None
        self.listeners: list[UpdateListener[Any, Any]] = []  # the update topics' readers, while running

    # -- public surface -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``run`` to finish the work in hand, commit and return (thread-safe, signal-safe)."""
        self._stop.set()

    def wait_assigned(self, timeout: float) -> bool:
        """Block until this member owns at least one input partition (joined the group)."""
        return self._assigned_event.wait(timeout)

    @property
    def assignment(self) -> set[tuple[str, int]]:
        """The input (topic, partition)s this member owns now."""
        return set(self._assigned)

    @property
    def paused(self) -> bool:
        return self._flow.paused

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until ``stop`` (or :meth:`stop`) is set, then drain, commit and close.

        Raises whatever stopped it abnormally (e.g. DeliveryError), after closing without a commit.
        """
        external = stop
        settings = self.settings
        server = producer = consumer = None
        listeners = self.listeners = []
        try:
            if settings.metrics_port:
                server = serve_metrics(settings.metrics_port, self.metrics.registry, settings.metrics_host)
            listeners.extend(self.updates.start_listeners())
            if self.learning is not None:
                self.learning.start()  # labels the clean texts now, not at the first insertion test
            producer, consumer = self._make_clients()
            log.info("worker starting", group=settings.group_id, inputs=settings.input_topics)
            consumer.subscribe(
                settings.input_topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not (self._stop.is_set() or (external is not None and external.is_set())):
                self._step()
            self._drain()
            log.info("worker stopped", consumed=self.stats.consumed, commits=self.stats.commits)
        except BaseException as error:
            self._failed = True  # no commit from here on, not even in the revoke during close
            log.error("worker failed; nothing more is committed", error=repr(error))
            raise
        finally:
            self._abandon_inflight()
            if consumer is not None:
                consumer.close()  # leaves the group (the revoke callback commits nothing new)
            self._assigned.clear()
            self.metrics.assigned.set(0)
            if producer is not None:
                if self._failed:
                    producer.purge()  # nothing of this run is committed: its inputs are read again
                else:
                    producer.flush(settings.flush_timeout_s)
                producer.close()  # now, not when the worker object is collected (maybe broker-less)
            for listener in listeners:
                listener.stop()
            if self.learning is not None:
                self.learning.stop()
            if server is not None:
                server.shutdown()

    # -- the loop -----------------------------------------------------------------------------------
    def _step(self) -> None:
        if self._inflight is not None and self._inflight.done():
            # hand the scorer its next batch first, then produce / flush / commit the finished one
            # while it works: the checkpoint's round trips no longer leave the model idle
            finished = self._take_inflight()
            waiting = self._batcher.take() if self._batcher.ready() else None
            if waiting is not None and _scorable(waiting):
                self._start_batch(waiting)
                waiting = None
            self._complete(*finished)
            if waiting is not None:  # dead letters only: completed after the batch before it
                self._complete(waiting, JudgedBatch())
        if self._inflight is None and self._batcher.ready():
            self._start_batch(self._batcher.take())
        self._flow.update(self._consumer, len(self._batcher), busy=self._inflight is not None)
        if self._inflight is not None:  # wake up as soon as the scorer is done
            wait([self._inflight], timeout=_BUSY_WAIT_S)
            timeout = 0.0
        else:
            left = self._batcher.time_left()
            timeout = _POLL_S if left is None else min(left, _POLL_S)
        self._accept(self._consumer.consume(self.settings.max_batch_size, timeout))

    def _accept(self, messages: list[Any]) -> None:
        from confluent_kafka import KafkaError, KafkaException

        items: list[Admitted] = []
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", error=str(error))
                continue
            items.append(self.pipeline.admit(Envelope.from_kafka(msg)))
            self.metrics.consumed.labels(msg.topic()).inc()
        self.stats.consumed += len(items)
        if self._count_tokens:  # tokenized now for the batch budget, and not again when judged
            items = self.pipeline.encode(items)
        max_length = self._max_length
        for item in items:
            tokens = 0 if item.accepted is None else len(item.encoded) if item.encoded else max_length
            self._batcher.add(item, tokens)

    def _start_batch(self, items: list[Admitted]) -> None:
        if not _scorable(items):
            self._complete(items, JudgedBatch())  # only dead letters: nothing to score
            return
        self._inflight_items = items
        self._inflight = submit_to_torch_thread(self._judge, items)

    def _take_inflight(self) -> tuple[list[Admitted], JudgedBatch]:
        assert self._inflight is not None
        scored = self._inflight.result()  # re-raises a systemic scoring failure: stop, no commit
        items, self._inflight, self._inflight_items = self._inflight_items, None, []
        return items, scored

    def _abandon_inflight(self) -> None:
        """On the way out: a batch not yet started is cancelled, one being scored is waited for."""
        if self._inflight is not None and not self._inflight.cancel():
            wait([self._inflight])

    def _finish_inflight(self) -> None:
        self._complete(*self._take_inflight())

    def _complete(self, items: list[Admitted], judged: JudgedBatch) -> None:
        """Produce the batch's outputs in input order, then checkpoint (flush → confirm → commit)."""
        checkpoint = self._checkpoint
        assert checkpoint is not None
        flagged = dead = 0
        hits: Counter[str] = Counter()  # messages per known trigger found in them
        for output in self.pipeline.records(items, judged):
            envelope = output.envelope
            if envelope.partition_key not in self._assigned:
                continue  # lost while in flight: its new owner produces it
            output = checkpoint.produce_output(output, self._topics, self.pipeline.max_output_bytes)
            kind, record = output.kind, output.record
            if kind == "dead_letter":
                dead += 1
                self.metrics.dead_letters.labels(record.error_type).inc()  # type: ignore[union-attr]
            flagged += kind == "audit"
            hits.update({hit.trigger for hit in getattr(record, "known_triggers", ())})
            source = envelope.source
            assert source is not None and source.topic is not None
            checkpoint.mark_processed(source.topic, source.partition, source.offset)
        offsets = checkpoint.pending
        committed = checkpoint.commit()  # raises DeliveryError: nothing committed
        self.metrics.count_batch(
            self.stats,
            size=len(items),
            scoring_seconds=judged.seconds if judged.judged else None,
            flagged=flagged,
            dead=dead,
            hits=hits,
            committed=bool(committed and offsets),
        )
        learning = self.learning
        if learning is not None and learning.current is not None:  # the set may be its own now
            self.updates.refresh_trigger_metrics(learning.current.created_at)
        log.debug(
            "batch done", size=len(items), flagged=flagged, dead=dead, scoring_s=round(judged.seconds, 4)
        )
        if self.on_batch is not None:
            report = BatchReport(
                len(items), judged.judged, flagged, dead, judged.seconds, offsets, judged.started
            )
            self.on_batch(report)

    def _drain(self) -> None:
        """The shutdown path: finish the batch in flight and commit; buffered messages stay uncommitted."""
        if self._inflight is not None:
            self._finish_inflight()
        assert self._checkpoint is not None
        self._checkpoint.commit()
        if len(self._batcher):
            log.info("buffered messages left uncommitted for the next owner", count=len(self._batcher))

    # -- rebalance callbacks (run inside consume(), in this thread) ---------------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._flow.on_assign(consumer, partitions)  # while paused, new partitions wait too
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self.metrics.assigned.set(len(self._assigned))
        log.info("partitions assigned", partitions=_names(partitions), owned=len(self._assigned))
        if self._assigned:
            self._assigned_event.set()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if not self._failed:
            if self._inflight is not None:
                self._finish_inflight()  # waits for the scorer; produces, flushes, commits
            assert self._checkpoint is not None
            self._checkpoint.commit()
        dropped = self._batcher.drop(lambda item: item.envelope.partition_key in revoked)
        self._forget(revoked)
        log.info("partitions revoked", partitions=_names(partitions), dropped=len(dropped))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._forget(lost)  # in-flight items of these partitions are skipped when the batch completes
        dropped = self._batcher.drop(lambda item: item.envelope.partition_key in lost)
        log.warning("partitions lost", partitions=_names(partitions), dropped=len(dropped))

    def _forget(self, partitions: set[tuple[str, int]]) -> None:
        if self._checkpoint is not None:
            self._checkpoint.forget(partitions)
        self._assigned -= partitions
        self.metrics.assigned.set(len(self._assigned))

    # -- clients, delivery ----------------------------------------------------------------
    def _make_clients(self) -> tuple[Any, Any]:
        producer, consumer, self._checkpoint = make_clients(self.settings, self._delivered)
        self._consumer = consumer
        return producer, consumer

    def _delivered(self, topic: str, input_ts: float | None) -> None:
        self.stats.produced[topic] = self.stats.produced.get(topic, 0) + 1
        self.metrics.produced.labels(topic).inc()
        if input_ts is not None:
            self.metrics.end_to_end_seconds.observe(max(0.0, time.time() - input_ts))


def _scorable(items: list[Admitted]) -> bool:
    return any(item.accepted is not None for item in items)


def _names(partitions: list[Any]) -> list[str]:
    return [f"{tp.topic}/{tp.partition}" for tp in partitions]
