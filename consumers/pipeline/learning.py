"""The judge step with trigger learning in it, written once for ``replay --learn-triggers`` and
``run --learn-triggers``.

Each accepted text of a batch goes to a :class:`~stream_guard.triggers.learner.TriggerLearner` for
recurrence *before* it is judged; when one makes a trigger recur and pass the insertion test, the batch
is judged in two parts, so the trigger is in force from that message on. Each judged message's top
word then goes to the learner's first-sight test (``TriggerLearner.nominate``); when it is learned, that
message and the rest of the part are judged again with it in force. Each part's evidence (confirmed
flags, flipping probes: ``Verdict.evidence``) is counted once it is judged. What a promotion puts in
force is the caller's ``on_promotion``: a replay numbers its sets (``replay-1``, ``replay-2``…), a worker
makes the next whole update of the triggers topic (and publishes it). Nothing here depends on the clock
or on thread timing, so a replay gives byte-identical records.

In a worker the learning judge runs on the torch thread (the insertion test is model work); sets
published by others reach its learner through :class:`consumers.worker.learning.WorkerLearning`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consumers.pipeline.judge import JudgedBatch
from consumers.pipeline.message_path import Admitted, MessagePipeline

if TYPE_CHECKING:
    from stream_guard.triggers.known import TriggerSet
    from stream_guard.triggers.learner import LearnedTrigger, TriggerLearner

__all__ = ["LearningJudge", "Promotion"]


@dataclass(frozen=True)
class Promotion:
    """A trigger promoted while judging: after how many judged messages, and the set version it opened."""

    trigger: LearnedTrigger
    after_messages: int
    version: str


OnPromotion = Callable[[Sequence["LearnedTrigger"]], "TriggerSet"]
"""Given the newly learned triggers (the learner already holds them), the set to judge with from now."""


@dataclass
class LearningJudge:
    """Judges batches of one message path while learning triggers (see the module docstring)."""

    pipeline: MessagePipeline
    learner: TriggerLearner
    on_promotion: OnPromotion
    promotions: list[Promotion] = field(default_factory=list)
    messages: int = 0

    def judge(self, batch: Sequence[Admitted]) -> JudgedBatch:
        """The verdicts of ``batch``'s accepted messages, in order, learning as it goes."""
        start, parts = 0, []
        for k, admitted in enumerate(batch):
            accepted = admitted.accepted
            if accepted is None:
                continue
            promoted = self.learner.observe_texts([accepted.text], at=admitted.at)
            if promoted:
                parts.append(self._judge_part(batch[start:k]))
                start = k
                self._promote(promoted)
        parts.append(self._judge_part(batch[start:]))
        return _joined(parts)

    def _judge_part(self, part: Sequence[Admitted]) -> JudgedBatch:
        """``part`` judged with the set in force; its evidence counted (a promotion applies next). A
        message whose top word is learned on first sight is judged again, with the rest of the part."""
        accepted = [k for k, a in enumerate(part) if a.accepted is not None]
        if not accepted:
            return JudgedBatch()
        judged = self.pipeline.judge(part)
        for n, result in enumerate(judged.results):
            if isinstance(result, Exception):
                continue
            word = None if result.known_triggers else result.top_word
            found = self.learner.nominate(word, result.label, result.anomaly_score, at=part[accepted[n]].at)
            if found is not None:  # in force from this very message: it and the rest are judged again
                kept = JudgedBatch(judged.results[:n], judged.seconds, judged.started)
                head = self._count(part[: accepted[n]], kept)
                self._promote([found])
                return _joined([head, self._judge_part(part[accepted[n] :])])
        return self._count(part, judged)

    def _count(self, part: Sequence[Admitted], judged: JudgedBatch) -> JudgedBatch:
        """Count ``part``'s messages and their evidence (``judged`` holds their results)."""
        self.messages += len(judged.results)
        evidence = [e for r in judged.results if not isinstance(r, Exception) for e in r.evidence]
        at = next((a.at for a in reversed(part) if a.at is not None), None)
        self._promote(self.learner.observe(evidence, at=at))
        return judged

    def _promote(self, promoted: Sequence[LearnedTrigger]) -> None:
        if not promoted:
            return
        triggers = self.on_promotion(promoted)
        self.pipeline.defender.set_triggers(triggers)
        for trigger in promoted:
            self.promotions.append(Promotion(trigger, self.messages, triggers.version))


def _joined(parts: Sequence[JudgedBatch]) -> JudgedBatch:
    """One JudgedBatch of the parts of a batch, in order."""
    judged = [p for p in parts if p.started is not None]
    if len(judged) <= 1:
        return judged[0] if judged else JudgedBatch()
    results = [r for p in judged for r in p.results]
    return JudgedBatch(results, sum(p.seconds for p in judged), judged[0].started)
