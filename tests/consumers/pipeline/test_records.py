"""The wire mapping: Verdict -> PredictionRecord / AuditRecord, ThresholdUpdate -> Threshold."""

from __future__ import annotations

import orjson

from consumers.pipeline.records import verdict_to_record
from consumers.pipeline.thresholds import threshold_from_update
from schemas import AuditRecord, CalibrationSummary, PredictionRecord, ThresholdUpdate, decode, encode
from stream_guard.verdict import SuspiciousWord, Verdict

SUMMARY = CalibrationSummary(dataset="d", n_texts=10, score_mean=0.1, score_std=0.01, quantiles={"50": 0.1})


def _verdict(flagged: bool, min_confidence: float | None) -> Verdict:
    return Verdict(
        id="m1",
        text="a cf film",
        model_id="model",
        label=0,
        label_name="neg",
        probabilities=[0.9, 0.1],
        anomaly_score=0.5,
        threshold=0.2,
        flagged=flagged,
        final_label=1 if flagged else 0,
        final_label_name="pos" if flagged else "neg",
        tokens=[],
        n_tokens=5,
        neutralized_text="a film" if flagged else None,
        neutralized_label=1 if flagged else None,
        neutralized_probabilities=[0.2, 0.8] if flagged else None,
        suspicious_words=[SuspiciousWord("cf", 2, 4, 0.5)] if flagged else [],
        threshold_version="v1",
        min_confidence=min_confidence,
    )


def test_records_carry_the_threshold_and_the_confidence_gate_they_were_judged_with():
    for flagged, kind in ((False, PredictionRecord), (True, AuditRecord)):
        for gate in (None, 0.85):
            record = verdict_to_record(_verdict(flagged, gate))
            assert isinstance(record, kind)
            wire = orjson.loads(encode(record))
            assert (wire["threshold"], wire["threshold_version"], wire["min_confidence"]) == (0.2, "v1", gate)
            assert decode(kind, encode(record)) == record


def test_threshold_update_gate_reaches_the_core_threshold():
    update = ThresholdUpdate(
        model_id="model",
        version="v2",
        value=0.3,
        percentile=65.0,
        min_confidence=0.87,
        calibration=SUMMARY,
        created_at="2026-01-01T00:00:00Z",
    )
    threshold = threshold_from_update(decode(ThresholdUpdate, encode(update)))
    assert (threshold.value, threshold.min_confidence) == (0.3, 0.87)
    assert threshold.passes_gate(0.9) and not threshold.passes_gate(0.5)
    no_gate = threshold_from_update(update.model_copy(update={"min_confidence": None}))
    assert no_gate.min_confidence is None and no_gate.passes_gate(0.0)
