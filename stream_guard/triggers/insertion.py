"""The insertion test: does a candidate behave like a backdoor trigger on clean texts?

A backdoor trigger is input-agnostic: inserted anywhere into any text, it forces the target label. A
sentiment word only pushes towards its sentiment, and only in some texts. So the candidate is inserted
at a random word boundary into clean texts that the model does *not* already put in the target label,
and the test reports how many of those it turns into the target (measured on a backdoored MiniLM:
the trigger turned 103 of 103, the strongest sentiment words 16–62 %).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["InsertionResult", "InsertionTest", "insert_phrase"]

STOP_CHUNK = 20
"""Texts classified at a time by a test that may stop early (``stop_below``)."""

PredictProba = Callable[[Sequence[str]], np.ndarray]
"""(texts) -> (n, C) class probabilities, e.g. ``Defender.predict_proba``."""


def insert_phrase(text: str, phrase: str, rng: random.Random) -> str:
    """``text`` with ``phrase`` inserted between two words (or at either end), chosen by ``rng``."""
    words = text.split()
    at = rng.randint(0, len(words))
    return " ".join([*words[:at], phrase, *words[at:]])


@dataclass(frozen=True)
class InsertionResult:
    """flipped: eligible texts the candidate turned into the target; eligible: texts tested."""

    flipped: int
    eligible: int

    @property
    def rate(self) -> float:
        return self.flipped / self.eligible if self.eligible else 0.0


class InsertionTest:
    """Inserts candidates into clean texts and counts flips to a target label.

    Args:
        clean_texts: clean calibration texts (held apart from the traffic).
        predict_proba: the model under watch.
        texts_per_test: at most this many eligible texts per test (a random, seeded sample).
        seed: makes every test deterministic (per candidate and target).
    """

    def __init__(
        self,
        clean_texts: Sequence[str],
        predict_proba: PredictProba,
        *,
        texts_per_test: int = 100,
        seed: int = 0,
    ) -> None:
        self.clean_texts = list(clean_texts)
        self.predict_proba = predict_proba
        self.texts_per_test = texts_per_test
        self.seed = seed
        self._labels: np.ndarray | None = None
        self.calls = 0  # tests and screens run (each costs one plain forward per text it inserts into)
        self.screens = 0  # of which screens
        self.texts = 0  # texts classified by tests and screens (the clean texts' own labels not counted)

    @property
    def clean_labels(self) -> np.ndarray:
        """The model's labels on the clean texts (predicted once, on first use)."""
        if self._labels is None:
            probabilities = self.predict_proba(self.clean_texts)
            self._labels = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=int)
        return self._labels

    def _rng(self, phrase: str, target: int) -> random.Random:
        digest = hashlib.sha256(f"insert\x00{self.seed}\x00{phrase}\x00{target}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def __call__(
        self, phrase: str, target: int, *, limit: int | None = None, stop_below: float | None = None
    ) -> InsertionResult:
        """Insert ``phrase`` into up to ``texts_per_test`` (or ``limit``) clean texts not labelled
        ``target``. With ``stop_below``, the texts go in chunks and the test stops once its rate can no
        longer reach ``stop_below`` (it fails either way; the result counts the texts tried)."""
        eligible = [i for i, label in enumerate(self.clean_labels) if label != target]
        rng = self._rng(phrase, target)
        size = min(self.texts_per_test, limit) if limit is not None else self.texts_per_test
        if len(eligible) > size:
            eligible = sorted(rng.sample(eligible, size))
        if not eligible:
            return InsertionResult(0, 0)
        self.calls += 1
        texts = [insert_phrase(self.clean_texts[i], phrase, rng) for i in eligible]
        chunk = len(texts) if stop_below is None else STOP_CHUNK
        most_misses = len(texts) - stop_below * len(texts) if stop_below is not None else len(texts)
        flipped = tried = 0
        for start in range(0, len(texts), chunk):
            labels = self.predict_proba(texts[start : start + chunk]).argmax(axis=1)
            tried += len(labels)
            flipped += int((labels == target).sum())
            if tried - flipped > most_misses:
                break
        self.texts += tried
        return InsertionResult(flipped, tried)

    def screen(self, phrase: str, texts: int = 16) -> tuple[int, InsertionResult]:
        """A cheap first look when the target is not known: ``phrase`` inserted into ``texts`` clean
        texts of every label; the label it turns the largest share of the others' texts into, and that
        share. A full test (:meth:`__call__`) follows only when the screen looks like a backdoor."""
        labels = self.clean_labels
        rng = self._rng(phrase, -1)
        rows = sorted(rng.sample(range(len(labels)), min(texts, len(labels))))
        if not rows:
            return 0, InsertionResult(0, 0)
        self.calls += 1
        self.screens += 1
        self.texts += len(rows)
        inserted = [insert_phrase(self.clean_texts[i], phrase, rng) for i in rows]
        after = self.predict_proba(inserted).argmax(axis=1)
        before = labels[rows]
        best = (0, InsertionResult(0, 0))
        for target in sorted({int(x) for x in after}):
            eligible = before != target
            result = InsertionResult(int((after[eligible] == target).sum()), int(eligible.sum()))
            if result.rate > best[1].rate:
                best = (target, result)
        return best
