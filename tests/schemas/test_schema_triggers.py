"""Known triggers on the wire: the TriggerUpdate (normal forms, distinct texts, revoked words) and the
trigger fields of prediction and audit records (absent in older records)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from schemas import (
    AuditRecord,
    EvidenceRecord,
    PredictionRecord,
    SchemaError,
    TriggerHitRecord,
    TriggerUpdate,
    decode,
    encode,
    make_threshold_version,
    make_trigger_version,
    normalize_trigger,
)


def test_trigger_update_round_trips_with_its_evidence(trigger_update: TriggerUpdate) -> None:
    back = decode(TriggerUpdate, encode(trigger_update))
    assert back == trigger_update
    learned, added = back.triggers
    assert (learned.source, learned.flips, learned.insertion_rate) == ("learned", 19, 1.0)
    assert (added.source, added.flips, added.learned_at) == ("operator", None, None)
    assert back.texts() == ["cf", "i watched this 3d movie"] and back.revoked == ["fails"]


def test_the_file_form_needs_only_texts() -> None:
    """What an operator writes by hand: text alone is a trigger, source defaults to operator."""
    raw = {
        "model_id": "m@1",
        "version": "v1",
        "created_at": "2026-01-01T00:00:00Z",
        "triggers": [{"text": "  Cf,  "}, {"text": "James Bond"}],
    }
    update = decode(TriggerUpdate, orjson.dumps(raw))
    assert update.texts() == ["cf", "james bond"]
    assert all(t.source == "operator" and t.target_label is None for t in update.triggers)
    assert update.revoked == []


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("CF", "cf"),
        (" cf, ", "cf"),
        ("James  BOND!", "james bond"),
        ("don't-stop", "don't-stop"),
        ("Ｃｆ", "cf"),  # NFKC: full-width letters
        ("Straße", "strasse"),  # case-folded, not lower-cased
        ("mn...bb", "mn bb"),
    ],
)
def test_texts_are_kept_in_normal_form(text: str, normal: str) -> None:
    assert normalize_trigger(text) == normal
    update = TriggerUpdate(
        model_id="m", version="v", created_at=datetime(2026, 1, 1, tzinfo=UTC), triggers=[{"text": text}]
    )
    assert update.triggers[0].text == normal


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"triggers": [{"text": ""}]}, "at least 1 character"),
        ({"triggers": [{"text": "?!"}]}, "at least one word"),
        ({"triggers": [{"text": "x" * 300}]}, "at most 256 characters"),
        ({"triggers": [{"text": "cf"}, {"text": " CF "}]}, "'cf' is listed twice"),
        ({"triggers": [{"text": "cf", "source": "guessed"}]}, "'learned' or 'operator'"),
        ({"triggers": [{"text": "cf", "target_label": -1}]}, "greater than or equal to 0"),
        ({"triggers": [{"text": "cf", "insertion_rate": 1.2}]}, "less than or equal to 1"),
        ({"triggers": [{"text": "cf", "clean_rate": float("nan")}]}, "finite number"),
        ({"triggers": [{"text": "cf", "flips": -3}]}, "greater than or equal to 0"),
        ({"revoked": ["bb", "BB"]}, "revoked trigger is listed twice"),
        ({"revoked": ["  "]}, "at least one word"),
        ({"triggers": [{"text": "cf"}], "revoked": ["Cf"]}, "revoked and known at once: 'cf'"),
        ({"model_id": ""}, "at least 1 character"),
        ({"version": ""}, "at least 1 character"),
    ],
)
def test_trigger_update_rejects(trigger_update: TriggerUpdate, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TriggerUpdate(**(trigger_update.model_dump() | change))


def test_a_bad_update_on_the_wire_is_a_one_line_schema_error() -> None:
    with pytest.raises(SchemaError) as info:
        decode(
            TriggerUpdate,
            b'{"model_id": "m", "version": "v", "created_at": "2026-01-01T00:00:00Z",'
            b' "triggers": [{"text": "cf"}, {"text": "CF"}]}',
        )
    assert "listed twice" in info.value.reason and "\n" not in info.value.reason
    with pytest.raises(SchemaError, match="created_at"):
        decode(TriggerUpdate, b'{"model_id": "m", "version": "v"}')


def test_make_trigger_version_is_sortable_and_not_a_threshold_version() -> None:
    t0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
    v1 = make_trigger_version(t0, "m", ("cf",))
    assert v1 == make_trigger_version(t0, "m", ("cf",))
    assert v1 != make_trigger_version(t0, "m", ("cf", "bb"))
    assert make_trigger_version(t0 + timedelta(microseconds=1), "m", ("cf",)) > v1
    assert v1 != make_threshold_version(t0, "m", ("cf",))


# --- records --------------------------------------------------------------------------------------


def test_records_carry_known_triggers_and_evidence(audit: AuditRecord) -> None:
    back = decode(AuditRecord, encode(audit))
    assert back.known_triggers == [TriggerHitRecord(trigger="cf", start=19, end=21)]
    assert back.trigger_version == audit.trigger_version is not None
    (evidence,) = back.evidence
    assert evidence.window[evidence.position] == evidence.word == "cf" and not evidence.probe


def test_older_records_get_empty_trigger_fields(prediction: PredictionRecord, old_audit_dict: dict) -> None:
    payload = orjson.loads(encode(prediction))
    for field in ("known_triggers", "trigger_version", "evidence"):
        payload.pop(field)
    record = decode(PredictionRecord, orjson.dumps(payload))
    assert (record.known_triggers, record.trigger_version, record.evidence) == ([], None, [])
    old = decode(AuditRecord, orjson.dumps(old_audit_dict))
    assert (old.known_triggers, old.trigger_version, old.evidence) == ([], None, [])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TriggerHitRecord(trigger="cf", start=5, end=3), "before start"),
        (lambda: TriggerHitRecord(trigger="", start=0, end=2), "at least 1 character"),
        (
            lambda: EvidenceRecord(word="cf", label_before=1, label_after=0, confidence_drop=1.5),
            "less than or equal to 1",
        ),
        (
            lambda: EvidenceRecord(word="cf", label_before=-1, label_after=0, confidence_drop=0.5),
            "greater than or equal to 0",
        ),
    ],
)
def test_trigger_fields_are_checked(build: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build()
