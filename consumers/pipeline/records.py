"""Map the core's verdicts onto the wire contract: prediction and audit records, with the known triggers
found and the evidence seen. (Threshold and trigger updates become the core's Threshold and TriggerSet
in :mod:`consumers.pipeline.thresholds` and :mod:`consumers.pipeline.triggers`.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas import (
    AuditRecord,
    EvidenceRecord,
    PredictionRecord,
    SourceRef,
    SuspiciousWordRecord,
    TokenRecord,
    TriggerHitRecord,
    utc_now,
)
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
        "known_triggers": [
            TriggerHitRecord(trigger=h.trigger, start=h.start, end=h.end) for h in verdict.known_triggers
        ],
        "trigger_version": verdict.trigger_version,
        "evidence": [
            EvidenceRecord(
                word=e.word,
                window=list(e.window),
                position=e.position,
                label_before=e.label_before,
                label_after=e.label_after,
                confidence_drop=min(1.0, max(0.0, e.confidence_drop)),
                probe=e.probe,
            )
            for e in verdict.evidence
        ],
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
