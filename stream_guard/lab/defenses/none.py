"""The model alone (no defense): the reference row every defense is compared with.

Its row also gives the ASR floor: the share of the poisoned texts, *without* their trigger, that the
model predicts as the target anyway (an ASR no defense can be blamed for).
"""

from __future__ import annotations

from collections.abc import Sequence

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.defenses.base import Analysis, Defense, Judged, Judgement
from stream_guard.lab.evalsets import EvalSets
from stream_guard.lab.inference import ProbabilityFn


class NoDefense(Defense):
    """The model's own labels; nothing is flagged, nothing is fitted."""

    name = "none"
    mode = "none"

    def __init__(self, prob_fn: ProbabilityFn) -> None:
        self.prob_fn = prob_fn

    def fit(self, validation: LabeledDataset) -> None:
        pass

    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        return [Judgement(int(label), False) for label in self.prob_fn(texts).argmax(axis=1)]

    def analyse(self, sets: EvalSets, judged: Judged) -> Analysis:
        if sets.poisoned is None or not len(sets.poisoned):
            return Analysis()
        originals = self.prob_fn(sets.poisoned.original_texts)
        return Analysis(row={"asr_without_trigger": float((originals.argmax(axis=1) == sets.target).mean())})
