"""``replay --learn-triggers``: learn backdoor triggers from the history a replay judges.

The replay runs as usual (the worker's message path, batches cut by count), judged by the
:class:`~consumers.pipeline.learning.LearningJudge` that ``run --learn-triggers`` uses too: each accepted
text is counted for recurrence before it is judged and each verdict's evidence after, all in input
order. A trigger it promotes is known to the defender from the next message judged on: those messages
come out with ``known_triggers`` and the set's ``trigger_version`` (``replay-1``, ``replay-2``, … one per
promoted trigger). Nothing depends on the clock or on thread timing, so the same input gives
byte-identical records and the same triggers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consumers.pipeline.envelope import Envelope
from consumers.pipeline.learning import LearningJudge, Promotion
from consumers.pipeline.message_path import MessagePipeline, Output

if TYPE_CHECKING:
    from stream_guard.triggers.known import KnownTrigger, TriggerSet
    from stream_guard.triggers.learner import TriggerLearner
    from stream_guard.triggers.rule import LearnedTrigger, LearnRule

__all__ = ["LearningReplay", "Promotion"]


@dataclass
class LearningReplay:
    """A replay that learns triggers as it goes (see the module docstring).

    pipeline: the replay's message path (``consumers.replay.run.replay_pipeline``); its defender gets
              each new trigger set.
    learner:  counts the texts and the evidence and runs the insertion tests.
    extra:    known triggers to keep in every set (e.g. a ``--triggers`` file's).
    """

    pipeline: MessagePipeline
    learner: TriggerLearner
    extra: Sequence[KnownTrigger] = ()
    judge: LearningJudge = field(init=False)

    def __post_init__(self) -> None:
        self.judge = LearningJudge(self.pipeline, self.learner, self._next_set)

    @property
    def promotions(self) -> list[Promotion]:
        return self.judge.promotions

    def _next_set(self, promoted: Sequence[LearnedTrigger]) -> TriggerSet:
        version = f"replay-{len(self.judge.promotions) + len(promoted)}"
        return self.learner.trigger_set(version, self.extra)

    def run(self, envelopes: Iterable[Envelope], *, batch_size: int) -> Iterator[Output]:
        """The outputs of ``envelopes`` in input order, learning as it goes."""
        pipeline = self.pipeline
        for batch in pipeline.batches(envelopes, batch_size):
            yield from pipeline.records(batch, self.judge.judge(batch))


def learning_replay(
    pipeline: MessagePipeline,
    clean_texts: Sequence[str],
    *,
    extra: Sequence[KnownTrigger] = (),
    revoked: Sequence[str] = (),
    seed: int = 0,
    rule: LearnRule | None = None,
) -> LearningReplay:
    """A learning replay whose learner tests candidates on ``clean_texts`` (held apart from the replayed
    traffic: the calibration texts) with the pipeline's own model; ``extra`` triggers stay known.
    ``rule``: by default ``STREAM_GUARD_LEARN_*``'s."""
    from stream_guard.triggers.insertion import InsertionTest
    from stream_guard.triggers.learn_settings import learn_rule
    from stream_guard.triggers.learner import TriggerLearner

    test = InsertionTest(clean_texts, pipeline.defender.predict_proba, seed=seed)
    rule = rule if rule is not None else learn_rule()
    learner = TriggerLearner.for_texts(test, rule, known=[t.text for t in extra], revoked=revoked)
    return LearningReplay(pipeline, learner, extra)
