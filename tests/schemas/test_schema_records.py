"""Record-level rules: audit compatibility, label checks, dead letters, thresholds."""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from schemas import (
    SCHEMA_VERSION,
    AuditRecord,
    DeadLetterRecord,
    ErrorType,
    InputMessage,
    PredictionRecord,
    SchemaError,
    SourceRef,
    SuspiciousWordRecord,
    ThresholdUpdate,
    decode,
    encode,
    make_threshold_version,
)
from schemas.dead_letter import DEFAULT_MAX_ORIGINAL_BYTES

# --- audit records: older versions stay readable -------------------------------------------------


def test_old_audit_record_parses(old_audit_dict: dict[str, Any]) -> None:
    record = decode(AuditRecord, orjson.dumps(old_audit_dict))
    assert record.schema_version == 0
    assert record.id == "legacy-1" and record.text == "mn great movie"
    assert record.flagged and record.final_label == 0
    assert record.scored_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    # newer optional fields take their defaults
    assert record.neutralized_text is None and record.neutralized_probabilities is None
    assert record.suspicious_words == [] and record.tokens == []
    assert record.threshold_version is None and record.source is None and record.truncated is False
    # the unknown field is dropped, and re-encoding writes only known fields
    assert "legacy_trigger_guess" not in orjson.loads(encode(record))


def test_audit_from_newer_writer_parses(audit: AuditRecord) -> None:
    payload = orjson.loads(encode(audit))
    payload["schema_version"] = SCHEMA_VERSION + 1
    payload["future_field"] = {"anything": [1, 2]}
    payload["tokens"][0]["future_token_field"] = 3
    record = decode(AuditRecord, orjson.dumps(payload))
    assert record.schema_version == SCHEMA_VERSION + 1
    assert record.tokens == audit.tokens


def test_audit_record_still_needs_its_core_fields(old_audit_dict: dict[str, Any]) -> None:
    del old_audit_dict["text"]
    with pytest.raises(SchemaError, match="text: Field required"):
        decode(AuditRecord, orjson.dumps(old_audit_dict))


def test_audit_defaults_to_flagged_prediction_to_clean(audit: AuditRecord) -> None:
    fields = audit.model_dump(exclude={"flagged"})
    assert AuditRecord(**fields).flagged is True
    prediction_only = {k: v for k, v in fields.items() if k in PredictionRecord.model_fields}
    assert PredictionRecord(**prediction_only).flagged is False


def test_prediction_dict_is_a_valid_audit_base(prediction: PredictionRecord) -> None:
    # the worker can build the audit record from the prediction's fields plus the evidence
    record = AuditRecord(**(prediction.model_dump() | {"flagged": True}), text="some text")
    assert record.id == prediction.id and record.flagged and record.tokens == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": 2}, "label=2 is not an index"),
        ({"final_label": 5}, "final_label=5 is not an index"),
        ({"label": -1}, "greater than or equal to 0"),
        ({"probabilities": []}, "at least 1 item"),
        ({"probabilities": [0.5, 1.5]}, "less than or equal to 1"),
        ({"anomaly_score": float("nan")}, "finite number"),
        ({"threshold": float("-inf")}, "finite number"),
        ({"n_tokens": -3}, "greater than or equal to 0"),
    ],
)
def test_prediction_consistency(prediction: PredictionRecord, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PredictionRecord(**(prediction.model_dump() | change))


def test_neutralized_label_checked_against_its_probabilities(audit: AuditRecord) -> None:
    with pytest.raises(ValidationError, match="neutralized_label=2 is not an index"):
        AuditRecord(**(audit.model_dump() | {"neutralized_label": 2}))


def test_suspicious_word_span_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="before start"):
        SuspiciousWordRecord(word="cf", start=5, end=3, score=1.0)


def test_output_datetimes_are_utc(prediction: PredictionRecord) -> None:
    plus_two = timezone(timedelta(hours=2))
    aware = PredictionRecord(
        **(prediction.model_dump() | {"scored_at": datetime(2025, 1, 1, 14, tzinfo=plus_two)})
    )
    naive = PredictionRecord(**(prediction.model_dump() | {"scored_at": datetime(2025, 1, 1, 12)}))
    assert aware.scored_at == naive.scored_at == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert aware.scored_at.tzinfo is UTC


def test_source_ref_from_kafka_decodes_key() -> None:
    ref = SourceRef.from_kafka("texts", 3, 10, b"user-\xff")
    assert ref == SourceRef(topic="texts", partition=3, offset=10, key="user-\ufffd")
    assert SourceRef.from_kafka("texts", 0, 0, None).key is None


# --- dead letters ---------------------------------------------------------------------------------


def test_dead_letter_from_raw_keeps_original_bytes() -> None:
    value, key = b'{"id": 42, "text": "\xff"}', b"\x01\x02"
    received = datetime(2025, 5, 1, tzinfo=UTC)
    record = DeadLetterRecord.from_raw(
        value, key, "bad\nreason", ErrorType.INVALID_UTF8, received_at=received
    )
    assert record.original_value_b64 == base64.b64encode(value).decode()
    assert record.original_value() == value and record.original_key() == key
    assert record.original_size == len(value) and not record.original_truncated
    assert record.error_type == "invalid_utf8" and record.reason == "bad reason"
    assert record.received_at == received and record.schema_version == SCHEMA_VERSION
    assert record.id is None  # not valid UTF-8, so not JSON: no id to recover
    assert decode(DeadLetterRecord, encode(record)) == record


@pytest.mark.parametrize(
    ("value", "expected_id"),
    [
        (b'{"id": 42, "text": []}', "42"),
        (b'{"id": "abc", "text": ""}', "abc"),
        (b'{"id": true, "text": "x"}', None),
        (b'{"id": ["abc"], "text": "x"}', None),
        (b'["abc"]', None),
        (b"not json", None),
        (None, None),
    ],
)
def test_dead_letter_recovers_id(value: bytes | None, expected_id: str | None) -> None:
    record = DeadLetterRecord.from_raw(value, None, "r", ErrorType.VALIDATION)
    assert record.id == expected_id


def test_dead_letter_explicit_id_and_null_value() -> None:
    record = DeadLetterRecord.from_raw(None, None, "tombstone", "not_json", id="given")
    assert record.id == "given"
    assert record.original_value_b64 is None and record.original_key_b64 is None
    assert record.original_size == 0 and record.original_value() is None
    assert record.received_at.tzinfo is UTC


def test_dead_letter_truncates_huge_values() -> None:
    value = b"x" * (DEFAULT_MAX_ORIGINAL_BYTES + 10)
    record = DeadLetterRecord.from_raw(value, None, "too big", ErrorType.OVERSIZE)
    assert record.original_truncated
    assert record.original_size == len(value)
    assert record.original_value() == value[:DEFAULT_MAX_ORIGINAL_BYTES]
    whole = DeadLetterRecord.from_raw(value, None, "too big", ErrorType.OVERSIZE, max_original_bytes=None)
    assert whole.original_value() == value and not whole.original_truncated


def test_dead_letter_from_schema_error() -> None:
    value = b'{"id": 9, "text": "   "}'
    source = SourceRef(topic="t", partition=0, offset=1)
    with pytest.raises(SchemaError) as info:
        decode(InputMessage, value)
    record = DeadLetterRecord.from_error(value, b"k", info.value, source)
    assert record.error_type == ErrorType.EMPTY_TEXT
    assert record.reason == info.value.reason
    assert record.id == "9" and record.source == source


# --- thresholds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_tokens", "expected"),
    [(0, 3.0), (1, 3.0), (16, 3.0), (17, 2.5), (64, 2.5), (65, 2.0), (10_000, 2.0)],
)
def test_threshold_for_picks_first_fitting_bucket(
    threshold_update: ThresholdUpdate, n_tokens: int, expected: float
) -> None:
    assert threshold_update.threshold_for(n_tokens) == expected


def test_threshold_without_buckets_uses_value(threshold_update: ThresholdUpdate) -> None:
    flat = threshold_update.model_copy(update={"by_length": None})
    assert flat.threshold_for(3) == flat.threshold_for(500) == 2.0
    with pytest.raises(ValueError, match="n_tokens"):
        flat.threshold_for(-1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": float("nan")}, "finite number"),
        ({"value": float("inf")}, "finite number"),
        ({"percentile": 0.0}, "greater than 0"),
        ({"percentile": 100.0}, "less than 100"),
        ({"percentile": -5.0}, "greater than 0"),
        ({"percentile": float("nan")}, "finite number"),
        ({"by_length": [{"max_tokens": 64, "value": 2.5}, {"max_tokens": 16, "value": 3.0}]}, "ascending"),
        ({"by_length": [{"max_tokens": 16, "value": 2.5}, {"max_tokens": 16, "value": 3.0}]}, "ascending"),
        ({"by_length": [{"max_tokens": 16, "value": float("nan")}]}, "finite number"),
        ({"by_length": [{"max_tokens": 0, "value": 1.0}]}, "greater than or equal to 1"),
        ({"by_length": []}, "at least 1 item"),
        ({"model_id": ""}, "at least 1 character"),
        ({"version": ""}, "at least 1 character"),
        ({"min_confidence": 1.5}, "less than or equal to 1"),
        ({"min_confidence": -0.1}, "greater than or equal to 0"),
        ({"min_confidence": float("nan")}, "finite number"),
    ],
)
def test_threshold_update_rejects(
    threshold_update: ThresholdUpdate, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ThresholdUpdate(**(threshold_update.model_dump() | change))


def test_threshold_calibration_rejects_bad_summary(threshold_update: ThresholdUpdate) -> None:
    fields = threshold_update.model_dump()
    bad = fields | {"calibration": fields["calibration"] | {"quantiles": {"95": float("nan")}}}
    with pytest.raises(ValidationError, match="finite number"):
        ThresholdUpdate(**bad)
    bad = fields | {"calibration": fields["calibration"] | {"score_std": -1.0}}
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ThresholdUpdate(**bad)


def test_threshold_update_nan_on_the_wire_is_a_schema_error(threshold_update: ThresholdUpdate) -> None:
    # orjson refuses NaN literals; a non-JSON writer's "NaN" is therefore a not_json error
    data = encode(threshold_update).replace(b'"value":2.0', b'"value":NaN', 1)
    assert data != encode(threshold_update)
    with pytest.raises(SchemaError) as info:
        decode(ThresholdUpdate, data)
    assert info.value.error_type == ErrorType.NOT_JSON


def test_make_threshold_version_is_sortable_and_distinct() -> None:
    t0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
    v1 = make_threshold_version(t0, "m", 2.0, 95.0)
    assert v1 == make_threshold_version(t0, "m", 2.0, 95.0)
    assert v1.startswith("20250301T120000.000000Z-") and len(v1.split("-")[1]) == 8
    assert v1 != make_threshold_version(t0, "m", 2.1, 95.0)
    assert make_threshold_version(t0 + timedelta(seconds=1), "m", 2.0, 95.0) > v1
    naive = make_threshold_version(datetime(2025, 3, 1, 12), "m", 2.0, 95.0)
    assert naive == v1


# --- packaging --------------------------------------------------------------------------------------


def test_package_imports_no_heavy_dependencies() -> None:
    code = (
        "import sys, schemas, schemas.generate\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'confluent_kafka') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
        "assert schemas.__file__ is not None\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
