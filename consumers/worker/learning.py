"""``run --learn-triggers``: the worker learns triggers from its own traffic, in the judge step.

Why in the worker: the learn service sees a message when the worker does, but its insertion test and
the update's trip through Kafka take about a second and a half on a loaded CPU; a worker under a backlog
judges hundreds of messages in that time, and every triggered one among them gets the attacker's label.
Learning in the judge step (the :class:`~consumers.pipeline.learning.LearningJudge` that
``replay --learn-triggers`` uses) puts a trigger in force from the message that made it recur, as in a
replay, so the live numbers are the replay's.

Each promotion becomes the next whole :class:`~schemas.TriggerUpdate` (the newest set this worker has
seen, with its learned triggers merged in, signed when an update key is set): the worker judges with it
at once and a publisher thread sends it to the triggers topic, so every other worker (and the learn
service) follows. Sets published by others reach the worker through its triggers listener: the learner
takes their triggers as known and their revoked words as never to learn (a revoked local trigger is
dropped), and a local trigger missing from a newer set (two workers publishing at once: the later
write wins on the compacted topic) is merged back in and published again. A threshold update that
carries a measured learner bar (``calibrate --scan-bar``) sets the learner's insertion bars, also
before the next batch (``STREAM_GUARD_LEARN_*`` still wins where set).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from consumers.kafka.publish import publish_record
from consumers.pipeline.learning import LearningJudge
from consumers.pipeline.thresholds import learn_rule_for
from consumers.pipeline.triggers import trigger_set_from_update, update_from_learned
from schemas import ThresholdUpdate, TriggerUpdate, encode

if TYPE_CHECKING:
    from consumers.pipeline.judge import JudgedBatch
    from consumers.pipeline.message_path import Admitted, MessagePipeline
    from consumers.worker.settings import WorkerSettings
    from stream_guard.triggers.known import TriggerSet
    from stream_guard.triggers.learner import TriggerLearner
    from stream_guard.triggers.rule import LearnedTrigger

__all__ = ["UpdatePublisher", "WorkerLearning"]

log = structlog.get_logger(__name__)

_RETRY_S = 2.0


class UpdatePublisher:
    """Publishes the newest trigger update from a thread of its own; a failed publication is retried
    (only the newest set matters: each update holds the whole set)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.published = 0
        self._pending: TriggerUpdate | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="trigger-publisher", daemon=True)

    def start(self) -> UpdatePublisher:
        self._thread.start()
        return self

    def submit(self, update: TriggerUpdate) -> None:
        with self._wake:
            self._pending = update
            self._wake.notify()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the pending update is out (or ``timeout`` seconds)."""
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._pending is None:  # stopping, and nothing left to publish
                    return
                update, self._pending = self._pending, None
            if self._publish(update):
                continue
            with self._wake:
                if self._pending is None:
                    self._pending = update  # retried, unless a newer set came meanwhile
                if self._stop:
                    return  # stopping: one try only
                self._wake.wait(_RETRY_S)

    def _publish(self, update: TriggerUpdate) -> bool:
        settings, kafka = self.settings, self.settings.kafka
        assert settings.triggers_topic is not None
        try:
            publish_record(
                settings.triggers_topic,
                update.model_id.encode(),
                encode(update),
                kafka.producer_config(),
                what="trigger update",
                timeout=10.0,
                admin_config=kafka.admin_config(),
            )
        except Exception as error:  # a broker down: the set is in force here, retried for the others
            log.warning(
                "learned trigger set not published; retrying", version=update.version, error=str(error)
            )
            return False
        self.published += 1
        log.info("learned trigger set published", version=update.version, triggers=len(update.triggers))
        return True


class WorkerLearning:
    """The worker's learning judge and what it publishes (see the module docstring)."""

    def __init__(
        self,
        pipeline: MessagePipeline,
        learner: TriggerLearner,
        settings: WorkerSettings,
        *,
        start: TriggerUpdate | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.learner = learner
        self.settings = settings
        self.current = start  # the newest set seen or made here
        self.judge = LearningJudge(pipeline, learner, self._promoted)
        # called (on the torch thread) with each trigger learned here and the update that carries it
        self.on_learned: Callable[[LearnedTrigger, TriggerUpdate], None] | None = None
        self.publisher = UpdatePublisher(settings)
        self._followed: TriggerUpdate | None = None
        self._threshold: ThresholdUpdate | None = None  # the newest threshold update, not yet taken in
        self.received: str | None = None  # the version of the newest set the listener handed over
        self.last_followed: str | None = None  # ... and of the newest one taken in
        self._lock = threading.Lock()
        if start is not None:
            learner.follow(start.texts(), start.revoked)

    def start(self) -> None:
        """Start publishing; label the clean texts (on the torch thread) before the first batch."""
        from stream_guard.torch_thread import run_on_torch_thread

        self.publisher.start()
        run_on_torch_thread(lambda: self.learner.test.clean_labels)

    def stop(self) -> None:
        self.publisher.stop()

    @property
    def model_id(self) -> str:
        return self.pipeline.defender.model_id

    def judge_batch(self, batch: Sequence[Admitted]) -> JudgedBatch:
        """The judge step (on the torch thread): a set published meanwhile is taken in first."""
        self._take_followed()
        self._take_threshold()
        return self.judge.judge(batch)

    def follow_threshold(self, update: ThresholdUpdate) -> None:
        """A newer threshold update (the listener's thread): its learner bar applies before the next batch."""
        with self._lock:
            self._threshold = update

    def _take_threshold(self) -> None:
        with self._lock:
            update, self._threshold = self._threshold, None
        if update is None:
            return
        rule = learn_rule_for(update)  # the environment's values were checked when the worker started
        if rule != self.learner.rule:
            self.learner.rule = rule
            log.info(
                "learner bar applied",
                version=update.version,
                min_insertion_rate=rule.min_insertion_rate,
                min_insertion_rate_unseen=rule.min_insertion_rate_unseen,
            )

    def follow(self, update: TriggerUpdate) -> None:
        """A newer set from the triggers topic (the listener's thread): applied before the next batch."""
        with self._lock:
            self._followed = update
            self.received = update.version

    def _take_followed(self) -> None:
        with self._lock:
            update, self._followed = self._followed, None
        current = self.current
        if update is None or (
            current is not None
            and (update.created_at, update.version) <= (current.created_at, current.version)
        ):
            return  # nothing new, or this worker's own set on its way back (a newer one is in force)
        self.learner.follow(update.texts(), update.revoked)
        self.current = update
        self.last_followed = update.version
        have = set(update.texts())
        missing = [t for t in self.learner.learned if t.text not in have]
        if missing:  # another writer's set won the topic: ours merged back in, and published again
            self.pipeline.defender.set_triggers(self._next_set(missing))
        else:
            self.pipeline.defender.set_triggers(trigger_set_from_update(update))

    def _next_set(self, learned: Sequence[LearnedTrigger]) -> TriggerSet:
        """The newest set with ``learned`` merged in: made, in force here, and published."""
        update = update_from_learned(self.model_id, learned, previous=self.current)
        update = self.settings.update_channel.sign(update)
        self.current = update
        if self.settings.triggers_topic is not None:
            self.publisher.submit(update)
        return trigger_set_from_update(update)

    def _promoted(self, promoted: Sequence[LearnedTrigger]) -> TriggerSet:
        triggers = self._next_set(promoted)
        update = self.current
        assert update is not None
        for trigger in promoted:
            log.info(
                "trigger learned in the worker",
                trigger=trigger.text,
                target=trigger.target_label,
                evidence=trigger.evidence_text,
                insertion_rate=round(trigger.insertion_rate, 3),
                version=update.version,
            )
            if self.on_learned is not None:
                self.on_learned(trigger, update)
        return triggers


def worker_learning(
    pipeline: MessagePipeline, settings: WorkerSettings, start: TriggerUpdate | None
) -> WorkerLearning:
    """The worker's learning for ``settings.clean_texts`` (a lab dataset's validation split or a file);
    raises CalibrationInputError (one line) when they cannot be read."""
    from consumers.calibrate.job import load_clean_texts
    from stream_guard.triggers.insertion import InsertionTest
    from stream_guard.triggers.learn_settings import learn_rule
    from stream_guard.triggers.learner import TriggerLearner

    assert settings.clean_texts is not None
    texts = load_clean_texts(settings.clean_texts).texts
    test = InsertionTest(texts, pipeline.defender.predict_proba)
    learner = TriggerLearner.for_texts(test, learn_rule())
    return WorkerLearning(pipeline, learner, settings, start=start)
