"""The interface every lab defense implements, what it says about each text, and how metrics are counted.

A defense is fitted on the clean validation split (the only data any threshold is calibrated on), then
judges texts one :class:`Judgement` each. :func:`run_defense` times both steps and turns the judgements
on the clean and the poisoned test texts into a :class:`DefenseOutcome`, whose :meth:`~DefenseOutcome.summary`
is the defense's row in the results. A new defense is a :class:`Defense` subclass in its own file and
one line in :mod:`stream_guard.lab.defenses.registry`.

Three kinds of defenses (``mode``):

- ``neutralize`` (X-GRAAD): flagged texts are rewritten and re-classified; a judgement's label is the
  final label. CACC = final label is the true label; ASR = final label is the target.
- ``reject`` (STRIP, RAP): flagged texts are refused. A rejected clean text counts as **wrong** for
  CACC (the service did not give its answer); a rejected poisoned text counts as **not attacked**
  for ASR. A judgement's label is the model's own label.
- ``none``: the model alone.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from stream_guard.lab.metrics import auroc, detection_metrics

if TYPE_CHECKING:
    from stream_guard.datasets import LabeledDataset
    from stream_guard.lab.evalsets import EvalSets

Mode = Literal["none", "reject", "neutralize"]


@dataclass(frozen=True)
class Judgement:
    """A defense's decision on one text."""

    label: int  # the label the service answers with (neutralize: after the rewrite)
    flagged: bool  # suspected of carrying a trigger (reject: refused; neutralize: rewritten)
    score: float | None = None  # suspiciousness, higher = more suspicious; None if the defense has none
    evidence: Any = None  # the defense's own record of the text (X-GRAAD: its Verdict), for analyses


class Defense(ABC):
    """A backdoor defense under evaluation: ``fit`` on clean validation data, then ``judge`` texts."""

    name: str
    mode: ClassVar[Mode]
    config: Any = None  # its settings (a frozen dataclass), None if it has none
    threshold: float | None = None  # the decision threshold ``fit`` set, if the defense has one

    @abstractmethod
    def fit(self, validation: LabeledDataset) -> None:
        """Calibrate (and construct, where the defense needs it) on the clean validation split."""

    @abstractmethod
    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        """One judgement per text, in order. ``ids`` name the texts; a defense that draws random numbers
        per text may seed them from the id, so the same text under the same id is judged the same."""

    def details(self) -> dict[str, Any]:
        """Settings and fitting results reported in the defense's row (after the metrics)."""
        return {}

    def analyse(self, sets: EvalSets, judged: Judged) -> Analysis:
        """Optional analyses of a finished run, on the evaluation data (X-GRAAD: Fig. 2 and Fig. 3)."""
        return Analysis()


@dataclass
class Analysis:
    """What a defense adds after its run: fields for its row, and the figures' data."""

    row: dict[str, Any] = field(default_factory=dict)
    components: dict[str, np.ndarray] | None = None  # clean/poisoned -> (N, 3) score components
    sweep: Any = None  # a threshold sweep (stream_guard.lab.defenses.xgraad.Sweep)
    sweep_check: dict[str, Any] | None = None


@dataclass
class DefenseOutcome:
    """Per-text results of one defense. Arrays over clean test texts (Nc) and poisoned texts (Np)."""

    name: str
    mode: Mode
    clean_labels: np.ndarray  # (Nc,) int
    clean_flags: np.ndarray  # (Nc,) bool
    poisoned_labels: np.ndarray  # (Np,) int
    poisoned_flags: np.ndarray  # (Np,) bool
    seconds: float  # time spent on the test texts (clean + poisoned)
    setup_seconds: float = 0.0  # fitting / calibration on the validation split
    clean_scores: np.ndarray | None = None  # (Nc,) higher = more suspicious
    poisoned_scores: np.ndarray | None = None  # (Np,)
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def accepted_correct(self, true_labels: np.ndarray) -> np.ndarray:
        """(Nc,) bool: the clean text got its true label (and, for reject, was not rejected)."""
        correct = np.asarray(self.clean_labels) == np.asarray(true_labels)
        return correct & ~self.clean_flags if self.mode == "reject" else correct

    def attacked(self, target: int) -> np.ndarray:
        """(Np,) bool: the poisoned text ended up with the target label (and was not rejected)."""
        hit = np.asarray(self.poisoned_labels) == target
        return hit & ~self.poisoned_flags if self.mode == "reject" else hit

    def summary(self, true_labels: np.ndarray, target: int) -> dict[str, Any]:
        """CACC, ASR, detection precision / recall / FPR, AUROC and time per 1,000 texts."""
        n_clean, n_poisoned = len(self.clean_labels), len(self.poisoned_labels)
        row: dict[str, Any] = {
            "defense": self.name,
            "mode": self.mode,
            "cacc": float(self.accepted_correct(true_labels).mean()) if n_clean else None,
            "asr": float(self.attacked(target).mean()) if n_poisoned else None,
            "precision": None,
            "recall": None,
            "fpr": None,
            "auroc": None,
            "threshold": self.threshold,
            "seconds_per_1000": 1000.0 * self.seconds / max(1, n_clean + n_poisoned),
            "setup_seconds": round(self.setup_seconds, 2),
            "n_clean": n_clean,
            "n_poisoned": n_poisoned,
        }
        if self.mode != "none" and n_clean and n_poisoned:
            det = detection_metrics(self.clean_flags, self.poisoned_flags)
            row.update(precision=det.precision, recall=det.recall, fpr=det.fpr)
        if self.clean_scores is not None and self.poisoned_scores is not None and n_clean and n_poisoned:
            row["auroc"] = auroc(self.clean_scores, self.poisoned_scores)
        row.update(self.extra)
        return row


@dataclass
class Judged:
    """One defense's run: its outcome and its judgements of the clean and the poisoned test texts."""

    outcome: DefenseOutcome
    clean: list[Judgement]
    poisoned: list[Judgement]


def run_defense(
    defense: Defense,
    validation: LabeledDataset,
    clean_texts: Sequence[str],
    poisoned_texts: Sequence[str],
) -> Judged:
    """Fit ``defense`` on ``validation``, then judge the clean (ids ``c<i>``) and poisoned (``p<i>``)
    test texts; fitting is timed as ``setup_seconds``, judging both sets as ``seconds``."""
    started = time.perf_counter()
    defense.fit(validation)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    clean = _judge(defense, clean_texts, "c")
    poisoned = _judge(defense, poisoned_texts, "p")
    seconds = time.perf_counter() - started
    outcome = DefenseOutcome(
        name=defense.name,
        mode=defense.mode,
        clean_labels=_labels(clean),
        clean_flags=_flags(clean),
        poisoned_labels=_labels(poisoned),
        poisoned_flags=_flags(poisoned),
        seconds=seconds,
        setup_seconds=setup,
        clean_scores=_scores(clean),
        poisoned_scores=_scores(poisoned),
        threshold=defense.threshold,
        extra=defense.details(),
    )
    return Judged(outcome, clean, poisoned)


def text_ids(prefix: str, n: int) -> list[str]:
    """The ids the lab judges ``n`` texts under: ``<prefix><index>`` (``c`` clean, ``p`` poisoned)."""
    return [f"{prefix}{i}" for i in range(n)]


def _judge(defense: Defense, texts: Sequence[str], prefix: str) -> list[Judgement]:
    texts = list(texts)
    out = defense.judge(texts, text_ids(prefix, len(texts)))
    if len(out) != len(texts):
        raise RuntimeError(f"defense {defense.name!r} judged {len(out)} of {len(texts)} texts")
    return out


def _labels(judgements: Sequence[Judgement]) -> np.ndarray:
    return np.array([j.label for j in judgements], dtype=np.int64)


def _flags(judgements: Sequence[Judgement]) -> np.ndarray:
    return np.array([j.flagged for j in judgements], dtype=bool)


def _scores(judgements: Sequence[Judgement]) -> np.ndarray | None:
    """(N,) scores, or None if the defense gives none (an empty set has an empty array)."""
    if any(j.score is None for j in judgements):
        return None
    return np.array([j.score for j in judgements], dtype=np.float64)
