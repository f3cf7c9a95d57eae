"""The defender's side of the stream-level defense: known triggers removed from every text that holds
one, probes for evidence, and the evidence each verdict carries for the trigger learner.

- **Known triggers** (:class:`~stream_guard.triggers.TriggerSet`, hot-swapped with
  ``Defender.set_triggers``): a text that holds one is flagged whatever its anomaly score; every
  occurrence is deleted and the rewrite classified again (one plain forward). This replaces the
  per-message decision for that text: its per-message rounds are not run.
- **Probes** (``DefenderSettings.probe_rate``): a share of the texts below the threshold, chosen by a
  hash of the message (the same in a replay), get their top word rewritten and re-classified like a
  flagged text, for evidence only: their verdict does not change.
- **Evidence** (:class:`~stream_guard.triggers.Evidence`): each confirmed flag and each probe that
  flipped the prediction, with the rewritten word and its neighbours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from stream_guard.model_runner import ModelRunner
from stream_guard.neutralize import message_rng, neutralize_spans
from stream_guard.scores import Neutralization, TextScores
from stream_guard.settings import DefenderSettings
from stream_guard.triggers.evidence import Evidence, evidence_for_spans
from stream_guard.triggers.known import TriggerHit
from stream_guard.verdict import SuspiciousWord

__all__ = ["flip_evidence", "neutralize_known", "probe_selected"]


def probe_selected(rate: float, seed: int, message_id: str, text: str) -> bool:
    """Whether a below-threshold message is probed: a hash of (seed, id, text) below ``rate``."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"probe\x00{seed}\x00{message_id}\x00{text}".encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest()[:8], "big") / 2**64 < rate


def _span_score(scores: TextScores, start: int, end: int) -> float:
    """The highest decision score among the candidate tokens inside [start, end) (0.0 if none)."""
    best = 0.0
    for j, (s, e) in enumerate(scores.encoded.offsets):
        if scores.candidates[j] and s < end and e > start and np.isfinite(scores.ranking[j]):
            best = max(best, float(scores.ranking[j]))
    return best


def neutralize_known(
    found: Mapping[int, tuple[str, str, TextScores, Sequence[TriggerHit]]],
    runner: ModelRunner,
    settings: DefenderSettings,
) -> dict[int, Neutralization]:
    """For each text (key → (id, text, scores, hits)): every hit deleted, the rewrite classified."""
    state: dict[int, Neutralization] = {}
    for i, (message_id, text, scores, hits) in found.items():
        rng = message_rng(settings.seed, message_id, text)  # unused by "delete"; kept for the signature
        new_text, _ = neutralize_spans(text, [(h.start, h.end) for h in hits], "delete", rng)
        words = [
            SuspiciousWord(text[h.start : h.end], h.start, h.end, _span_score(scores, h.start, h.end))
            for h in hits
        ]
        state[i] = Neutralization(text=new_text, scores=scores, words=words)
    if state:
        keys = list(state)
        texts = [state[i].text if state[i].text.strip() else " " for i in keys]
        for i, classified in zip(keys, runner.classify(runner.encode(texts), settings), strict=True):
            state[i].scores = classified
    return state


def flip_evidence(
    message_id: str, text: str, before: TextScores, fixed: Neutralization, *, probe: bool
) -> list[Evidence]:
    """Evidence of a rewrite (flag or probe) when it flipped the prediction; [] otherwise."""
    return evidence_for_spans(
        message_id,
        text,
        [(w.start, w.end) for w in fixed.words],
        [float(p) for p in before.probabilities],
        [float(p) for p in fixed.scores.probabilities],
        probe=probe,
    )
