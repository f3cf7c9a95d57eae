"""The judge step with trigger learning in it, written once for ``replay --learn-triggers`` and
``run --learn-triggers``.

A batch is judged in one call, then walked in input order: each accepted text goes to a
:class:`~stream_guard.triggers.learner.TriggerLearner` for recurrence, and its verdict's top word to the
learner's first-sight test (``TriggerLearner.nominate``). When a message makes a trigger recur, or
reveals it on first sight, and it passes the insertion test, that message and the rest of the batch are
judged again with the trigger in force: it is in force from the message that showed it, and the learner
never sees a text before the ones ahead of it are done. The verdicts kept have their evidence (confirmed
flags, flipping probes: ``Verdict.evidence``) counted. What a promotion puts in
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
    from stream_guard.triggers.learner import TriggerLearner
    from stream_guard.triggers.rule import LearnedTrigger

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
        return self._judge_part(batch, seen=0)

    def _judge_part(self, part: Sequence[Admitted], seen: int) -> JudgedBatch:
        """``part`` judged with the set in force, then walked in order: each message is counted for
        recurrence and its verdict goes to first sight (except the first ``seen``: they were, before the
        promotion that has them judged again). When one promotes a trigger, the messages before it are
        kept (their evidence counted) and it and the rest are judged again with the new set in force."""
        accepted = [k for k, a in enumerate(part) if a.accepted is not None]
        if not accepted:
            return JudgedBatch()
        judged = self.pipeline.judge(part)
        for n, result in enumerate(judged.results):
            if n < seen:
                continue
            admitted = part[accepted[n]]
            promoted = self.learner.observe_texts([admitted.accepted.text], at=admitted.at)  # type: ignore[union-attr]
            if not promoted and not isinstance(result, Exception):
                word = None if result.known_triggers else result.top_word
                found = self.learner.nominate(word, result.label, result.anomaly_score, at=admitted.at)
                promoted = [found] if found is not None else []
            if promoted:
                kept = JudgedBatch(judged.results[:n], judged.seconds, judged.started)
                head = self._count(part[: accepted[n]], kept)
                self._promote(promoted)
                return _joined([head, self._judge_part(part[accepted[n] :], seen=1)])
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
