"""The defender's side of the stream-level defense: known triggers removed from every text that holds
one, probes for evidence, and the evidence each verdict carries for the trigger learner.

- **Known triggers** (:class:`~stream_guard.triggers.TriggerSet`, hot-swapped with
  ``Defender.set_triggers``): a text that holds one is flagged whatever its anomaly score; every
  occurrence is deleted and the rewrite classified again (one plain forward). This replaces the
  per-message decision for that text: its per-message rounds are not run.
- **Probes** (``DefenderSettings.probe_rate``): a share of the texts below the threshold, chosen by a
  hash of the message (the same in a replay), get each of their ``probe_words`` top-scored words
  deleted alone and the rewrite classified (one plain forward each), for evidence only: their verdict
  does not change. With probing on, a flag whose rewrite did not move the prediction is probed the
  same way. On a model
  whose attribution ranks a split-piece trigger 2nd or 3rd (measured: never 1st on a three-piece
  word), the top word alone never flips the label, and the evidence would never name the trigger.
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
from stream_guard.selection import select_words
from stream_guard.settings import DefenderSettings
from stream_guard.triggers.evidence import Evidence, evidence_for_spans
from stream_guard.triggers.known import TriggerHit
from stream_guard.verdict import SuspiciousWord

__all__ = ["flip_evidence", "neutralize_known", "probe_evidence", "probe_selected"]


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


def probe_evidence(
    probed: Mapping[int, tuple[str, str, TextScores]], runner: ModelRunner, settings: DefenderSettings
) -> dict[int, list[Evidence]]:
    """For each text (key → (id, text, scores)): each of its ``probe_words`` top words deleted alone,
    every rewrite classified in one batched call; the evidence of those that flipped the prediction."""
    rewrites: list[str] = []
    tried: list[tuple[int, tuple[int, int]]] = []
    for i, (_, text, scores) in probed.items():
        for pick in select_words(scores, [], settings.probe_words, span_ratio=settings.span_ratio):
            new_text, _ = neutralize_spans(text, [pick.span], "delete", message_rng(settings.seed, "", text))
            rewrites.append(new_text if new_text.strip() else " ")
            tried.append((i, pick.span))
    out: dict[int, list[Evidence]] = {i: [] for i in probed}
    if not rewrites:
        return out
    classified = runner.classify(runner.encode(rewrites), settings)
    for (i, span), after in zip(tried, classified, strict=True):
        message_id, text, before = probed[i]
        out[i] += evidence_for_spans(
            message_id,
            text,
            [span],
            [float(p) for p in before.probabilities],
            [float(p) for p in after.probabilities],
            probe=True,
        )
    return out


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
