"""Build one text's `Verdict` from its scores, its flag, its neutralization and the threshold in force.

The mapping from the defense's intermediate data (`stream_guard.scores`) to its output
(`stream_guard.verdict`), written once; the Defender decides, this module only reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stream_guard.scores import Neutralization, TextScores
from stream_guard.selection import select_words
from stream_guard.threshold import Threshold
from stream_guard.triggers.evidence import Evidence
from stream_guard.triggers.known import TriggerHit
from stream_guard.triggers.phrases import normalize_phrase
from stream_guard.verdict import TokenAttribution, Verdict

__all__ = ["build_verdict", "token_attributions", "top_word"]


def token_attributions(s: TextScores) -> list[TokenAttribution]:
    """Every token of a scored text with its attributions, in input order."""
    enc = s.encoded
    out = []
    for j, token in enumerate(enc.tokens):
        start, end = enc.offsets[j]
        special = enc.word_ids[j] is None
        candidate = bool(s.candidates[j])
        out.append(
            TokenAttribution(
                token=token,
                start=None if special else start,
                end=None if special else end,
                attention=float(s.attention[j]),
                gradient=float(s.gradient[j]),
                score=float(s.score[j]) if candidate else None,
                candidate=candidate,
                decision_score=float(s.ranking[j]) if candidate else None,
            )
        )
    return out


def build_verdict(
    message_id: str,
    text: str,
    s: TextScores,
    *,
    model_id: str,
    label_names: Sequence[str],
    limit: float | None,
    threshold: Threshold | None,
    flagged: bool,
    fixed: Neutralization | None,
    with_tokens: bool,
    known_triggers: Sequence[TriggerHit] = (),
    trigger_version: str | None = None,
    evidence: Sequence[Evidence] = (),
) -> Verdict:
    """The verdict on `text` (scored as `s`): `limit` is the threshold value its length got, `fixed` its
    neutralization if it was flagged and the flag stood; `with_tokens` adds the per-token attributions."""
    final = fixed.scores if fixed is not None else s
    return Verdict(
        id=message_id,
        text=text,
        model_id=model_id,
        label=s.label,
        label_name=label_names[s.label],
        probabilities=[float(p) for p in s.probabilities],
        anomaly_score=s.anomaly,
        threshold=limit,
        threshold_version=threshold.version if threshold else None,
        min_confidence=threshold.min_confidence if threshold else None,
        flagged=flagged,
        final_label=final.label,
        final_label_name=label_names[final.label],
        tokens=token_attributions(s) if with_tokens else [],
        n_tokens=len(s.encoded),
        truncated=s.encoded.truncated,
        neutralized_text=fixed.text if fixed else None,
        neutralized_label=fixed.scores.label if fixed else None,
        neutralized_probabilities=[float(p) for p in fixed.scores.probabilities] if fixed else None,
        neutralized_anomaly_score=_finite(fixed.scores.anomaly) if fixed else None,
        suspicious_words=list(fixed.words) if fixed else [],
        known_triggers=list(known_triggers),
        trigger_version=trigger_version,
        evidence=list(evidence),
        top_word=top_word(text, s),
    )


def top_word(text: str, s: TextScores) -> str | None:
    """The normal form of ``text``'s top-ranked word (None when nothing ranks): what the trigger
    learner tests on first sight (``TriggerLearner.nominate``)."""
    if not s.has_candidates:
        return None
    picks = select_words(s, (), 1)
    if not picks:
        return None
    return normalize_phrase(text[picks[0].start : picks[0].end]) or None


def _finite(value: float) -> float | None:
    """None for the NaN anomaly of a rewrite that was classified, not scored (`rescore_attributions`)."""
    return value if np.isfinite(value) else None
