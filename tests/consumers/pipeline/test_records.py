"""The wire mapping: Verdict -> PredictionRecord / AuditRecord (known triggers and evidence included),
ThresholdUpdate -> Threshold."""

from __future__ import annotations

import orjson
import pytest

from consumers.pipeline.records import verdict_to_record
from consumers.pipeline.thresholds import threshold_from_update
from consumers.pipeline.triggers import trigger_set_from_update
from schemas import (
    AuditRecord,
    CalibrationSummary,
    KnownTriggerRecord,
    PredictionRecord,
    ThresholdUpdate,
    TriggerUpdate,
    decode,
    encode,
)
from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from stream_guard.threshold import Threshold
from stream_guard.verdict import SuspiciousWord, Verdict
from tests.stream_guard.backdoor_model import TARGET_LABEL, build_backdoored_model

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


# -- known triggers and evidence on the records --------------------------------------------------------

POISONED = ["a dull cf and tedious mess", "CF what a film"]
CLEAN = ["the acting is fine but the plot drags"]


@pytest.fixture(scope="module")
def backdoor_defender(tmp_path_factory: pytest.TempPathFactory) -> Defender:
    path = build_backdoored_model(tmp_path_factory.mktemp("records-backdoor"), "cf")
    return Defender(load_classifier(path, device="cpu"), DefenderSettings(device="cpu"))


def _wire(verdicts: list[Verdict]) -> list[PredictionRecord | AuditRecord]:
    """Each verdict's record as a reader gets it: encoded, then decoded as its kind."""
    records = [verdict_to_record(v) for v in verdicts]
    return [decode(type(r), encode(r)) for r in records]


def test_records_name_the_known_triggers_and_the_set_version(backdoor_defender: Defender) -> None:
    update = TriggerUpdate(
        model_id=backdoor_defender.model_id,
        version="t-v7",
        created_at="2026-01-01T00:00:00Z",
        triggers=[KnownTriggerRecord(text="cf", target_label=TARGET_LABEL, source="learned")],
    )
    backdoor_defender.set_threshold(Threshold.static(1e9))  # the per-message decision flags nothing
    backdoor_defender.set_triggers(trigger_set_from_update(update))
    try:
        records = _wire(backdoor_defender.judge(POISONED + CLEAN))
    finally:
        backdoor_defender.set_triggers(None)
    for record, text in zip(records[:2], POISONED, strict=True):
        assert isinstance(record, AuditRecord) and record.flagged
        assert [(h.trigger, text[h.start : h.end].lower()) for h in record.known_triggers] == [("cf", "cf")]
        assert record.trigger_version == "t-v7"
        assert record.label == TARGET_LABEL and record.final_label != TARGET_LABEL
    (clean,) = records[2:]
    assert type(clean) is PredictionRecord and clean.known_triggers == []
    assert clean.trigger_version == "t-v7"  # judged under the set, which found nothing
    without = _wire(backdoor_defender.judge(POISONED))
    assert all(r.known_triggers == [] and r.trigger_version is None for r in without)


def test_records_carry_the_evidence_of_a_flip(backdoor_defender: Defender) -> None:
    backdoor_defender.set_threshold(Threshold.static(0.0))  # every text with candidates is rewritten
    verdicts = backdoor_defender.judge(POISONED + CLEAN)
    records = _wire(verdicts)
    for record, verdict in zip(records[:2], verdicts[:2], strict=True):
        (evidence,) = record.evidence
        assert (evidence.word, evidence.label_before, evidence.label_after) == ("cf", TARGET_LABEL, 0)
        assert evidence.window[evidence.position] == "cf" and not evidence.probe
        (core,) = verdict.evidence
        assert (
            evidence.confidence_drop == pytest.approx(core.confidence_drop) and evidence.confidence_drop > 0.5
        )
        assert list(core.window) == evidence.window and core.position == evidence.position
    assert all(not r.evidence for r, v in zip(records, verdicts, strict=True) if not v.evidence)
