"""Map the core's objects onto the wire contract and back: verdicts to prediction/audit records,
threshold updates to the core's Threshold."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas import (
    AuditRecord,
    PredictionRecord,
    SourceRef,
    SuspiciousWordRecord,
    ThresholdUpdate,
    TokenRecord,
    utc_now,
)
from stream_guard.threshold import Threshold
from stream_guard.verdict import Verdict


def verdict_to_record(
    verdict: Verdict,
    *,
    source: SourceRef | None = None,
    metadata: dict[str, Any] | None = None,
    scored_at: datetime | None = None,
) -> PredictionRecord | AuditRecord:
    """A PredictionRecord for a clean verdict, an AuditRecord (with its evidence) for a flagged one."""
    common: dict[str, Any] = {
        "id": verdict.id,
        "model_id": verdict.model_id,
        "label": verdict.label,
        "label_name": verdict.label_name,
        "probabilities": verdict.probabilities,
        "anomaly_score": verdict.anomaly_score,
        "threshold": verdict.threshold,
        "threshold_version": verdict.threshold_version,
        "min_confidence": verdict.min_confidence,
        "flagged": verdict.flagged,
        "final_label": verdict.final_label,
        "final_label_name": verdict.final_label_name,
        "truncated": verdict.truncated,
        "n_tokens": verdict.n_tokens,
        "source": source,
        "metadata": metadata,
        "scored_at": scored_at or utc_now(),
    }
    if not verdict.flagged:
        return PredictionRecord(**common)
    # when flagged, the final verdict is the neutralized text's prediction
    names = verdict.final_label_name if verdict.neutralized_label is not None else None
    return AuditRecord(
        **common,
        text=verdict.text,
        neutralized_text=verdict.neutralized_text,
        neutralized_label=verdict.neutralized_label,
        neutralized_label_name=names,
        neutralized_probabilities=verdict.neutralized_probabilities,
        neutralized_anomaly_score=verdict.neutralized_anomaly_score,
        suspicious_words=[
            SuspiciousWordRecord(word=w.word, start=w.start, end=w.end, score=w.score, iteration=w.iteration)
            for w in verdict.suspicious_words
        ],
        tokens=[
            TokenRecord(
                token=t.token,
                start=t.start,
                end=t.end,
                attention=t.attention,
                gradient=t.gradient,
                score=t.score,
                candidate=t.candidate,
                decision_score=t.decision_score,
            )
            for t in verdict.tokens
        ],
    )


def threshold_from_update(update: ThresholdUpdate) -> Threshold:
    """The core's Threshold for a validated update (length buckets included)."""
    buckets = tuple((b.max_tokens, b.value) for b in update.by_length or ())
    return Threshold(
        value=update.value,
        version=update.version,
        percentile=update.percentile,
        by_length=buckets,
        min_confidence=update.min_confidence,
    )
