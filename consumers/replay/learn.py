"""``replay --learn-triggers``: learn backdoor triggers from the history a replay judges.

The replay runs as usual (the worker's message path, batches cut by count). Each accepted text goes to
a :class:`~stream_guard.triggers.learner.TriggerLearner` for recurrence *before* it is judged (as a
learner reading the input topic sees it before the worker has scored it), and the evidence on the
verdicts (confirmed flags and flipping probes, ``Verdict.evidence``) once they are judged, all in input
order. A trigger it promotes is known to the defender from the next message judged on: those messages
come out with ``known_triggers`` and the
set's ``trigger_version`` (``replay-1``, ``replay-2``, … one per promotion). Nothing depends on the clock
or on thread timing, so the same input gives byte-identical records and the same triggers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consumers.pipeline.envelope import Envelope
from consumers.pipeline.message_path import Admitted, MessagePipeline, Output

if TYPE_CHECKING:
    from stream_guard.triggers.known import KnownTrigger
    from stream_guard.triggers.learner import LearnedTrigger, TriggerLearner

__all__ = ["LearningReplay", "Promotion"]


@dataclass(frozen=True)
class Promotion:
    """A trigger promoted during a replay: after how many messages, and the set version it opened."""

    trigger: LearnedTrigger
    after_messages: int
    version: str


@dataclass
class LearningReplay:
    """A replay that learns triggers as it goes (see the module docstring).

    pipeline: the replay's message path (``consumers.replay.run.replay_pipeline``); its defender gets
              each new trigger set.
    learner:  counts the evidence and runs the insertion tests.
    extra:    known triggers to keep in every set (e.g. a ``--triggers`` file's).
    """

    pipeline: MessagePipeline
    learner: TriggerLearner
    extra: Sequence[KnownTrigger] = ()
    promotions: list[Promotion] = field(default_factory=list)
    messages: int = 0

    def run(self, envelopes: Iterable[Envelope], *, batch_size: int) -> Iterator[Output]:
        """The outputs of ``envelopes`` in input order, learning as it goes: each accepted text is
        counted for recurrence before it is judged (a trigger it makes recur is in force from that
        message on: the batch is judged in two parts), and each part's evidence is counted once judged."""
        for batch in self.pipeline.batches(envelopes, batch_size):
            start = 0
            for k, admitted in enumerate(batch):
                accepted = admitted.accepted
                if accepted is None:
                    continue
                promoted = self.learner.observe_texts([accepted.text], at=admitted.at)
                if promoted:
                    yield from self._judge(batch[start:k])
                    start = k
                    self._promote(promoted)
            yield from self._judge(batch[start:])

    def _judge(self, part: Sequence[Admitted]) -> list[Output]:
        """``part`` judged with the set in force; its evidence counted (a promotion applies next)."""
        if not part:
            return []
        pipeline = self.pipeline
        outputs = pipeline.records(part, pipeline.judge(part))
        self.messages += len(outputs)
        evidence = [e for o in outputs if o.verdict is not None for e in o.verdict.evidence]
        at = next((a.at for a in reversed(part) if a.at is not None), None)
        self._promote(self.learner.observe(evidence, at=at))
        return outputs

    def _promote(self, promoted: Sequence[LearnedTrigger]) -> None:
        for trigger in promoted:
            version = f"replay-{len(self.promotions) + 1}"
            self.promotions.append(Promotion(trigger, self.messages, version))
        if promoted:
            version = self.promotions[-1].version
            self.pipeline.defender.set_triggers(self.learner.trigger_set(version, self.extra))


def learning_replay(
    pipeline: MessagePipeline,
    clean_texts: Sequence[str],
    *,
    extra: Sequence[KnownTrigger] = (),
    revoked: Sequence[str] = (),
    seed: int = 0,
) -> LearningReplay:
    """A learning replay whose learner tests candidates on ``clean_texts`` (held apart from the replayed
    traffic: the calibration texts) with the pipeline's own model; ``extra`` triggers stay known."""
    from stream_guard.triggers.insertion import InsertionTest
    from stream_guard.triggers.learner import TriggerLearner

    test = InsertionTest(clean_texts, pipeline.defender.predict_proba, seed=seed)
    learner = TriggerLearner.for_texts(test, known=[t.text for t in extra], revoked=revoked)
    return LearningReplay(pipeline, learner, extra)
