"""encode/decode round trips and the SchemaError raised for each kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from schemas import (
    SCHEMA_VERSION,
    AuditRecord,
    DeadLetterRecord,
    ErrorType,
    InputMessage,
    PredictionRecord,
    SchemaError,
    ThresholdUpdate,
    TriggerUpdate,
    decode,
    encode,
)
from schemas.codec import MAX_REASON_ERRORS


@pytest.mark.parametrize(
    ("fixture", "cls"),
    [
        ("input_message", InputMessage),
        ("prediction", PredictionRecord),
        ("audit", AuditRecord),
        ("dead_letter", DeadLetterRecord),
        ("threshold_update", ThresholdUpdate),
        ("trigger_update", TriggerUpdate),
    ],
)
def test_round_trip(request: pytest.FixtureRequest, fixture: str, cls: type[BaseModel]) -> None:
    record = request.getfixturevalue(fixture)
    data = encode(record)
    assert isinstance(data, bytes)
    back = decode(cls, data)
    assert back == record
    assert encode(back) == data
    assert orjson.loads(data)["schema_version"] == SCHEMA_VERSION


def test_encode_writes_utc_rfc3339(prediction: PredictionRecord) -> None:
    payload = orjson.loads(encode(prediction))
    assert payload["scored_at"] == "2025-03-01T12:30:15.123456Z"
    assert payload["source"] == {"topic": "texts", "partition": 0, "offset": 17, "key": "k1"}


def test_decode_accepts_bytearray_and_memoryview(input_message: InputMessage) -> None:
    data = encode(input_message)
    assert decode(InputMessage, bytearray(data)) == input_message
    assert decode(InputMessage, memoryview(data)) == input_message


def test_input_defaults_and_ignores_extra_fields() -> None:
    msg = decode(InputMessage, b'{"id": "a", "text": "hello", "unknown": {"x": 1}}')
    assert msg.schema_version == SCHEMA_VERSION
    assert msg.key is None and msg.metadata is None and msg.timestamp is None
    assert not hasattr(msg, "unknown")


def test_input_integer_id_becomes_string() -> None:
    assert decode(InputMessage, b'{"id": 5, "text": "hi"}').id == "5"
    assert decode(InputMessage, b'{"id": -12, "text": "hi"}').id == "-12"


def test_input_text_is_kept_verbatim() -> None:
    assert decode(InputMessage, b'{"id": "a", "text": "  padded  "}').text == "  padded  "


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'"2025-03-01T12:00:00Z"', datetime(2025, 3, 1, 12, tzinfo=UTC)),
        (b'"2025-03-01T14:00:00+02:00"', datetime(2025, 3, 1, 12, tzinfo=UTC)),
        (b'"2025-03-01T12:00:00"', datetime(2025, 3, 1, 12, tzinfo=UTC)),  # naive = UTC
        (b"1740830400", datetime(2025, 3, 1, 12, tzinfo=UTC)),  # Unix seconds
        (b"1740830400000", datetime(2025, 3, 1, 12, tzinfo=UTC)),  # Unix milliseconds
    ],
)
def test_input_timestamp_normalised_to_utc(raw: bytes, expected: datetime) -> None:
    msg = decode(InputMessage, b'{"id": "a", "text": "t", "timestamp": ' + raw + b"}")
    assert msg.timestamp == expected
    assert msg.timestamp is not None and msg.timestamp.utcoffset() is not None
    assert msg.timestamp.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    ("data", "error_type", "in_reason"),
    [
        (None, ErrorType.NOT_JSON, "null"),
        (b"", ErrorType.NOT_JSON, "empty"),
        (b'{"id": "a", "text": "caf\xe9"}', ErrorType.INVALID_UTF8, "UTF-8"),
        (b"\xff\xfe{}", ErrorType.INVALID_UTF8, "byte 0"),
        (b'{"id": "a", "text": ', ErrorType.NOT_JSON, "not JSON"),
        (b"{'id': 'a'}", ErrorType.NOT_JSON, "line 1"),
        (b'{"id": "a", "text": NaN}', ErrorType.NOT_JSON, "not JSON"),
        (b"[1, 2]", ErrorType.NOT_OBJECT, "got array"),
        (b'"text"', ErrorType.NOT_OBJECT, "got string"),
        (b"null", ErrorType.NOT_OBJECT, "got null"),
        (b"3.5", ErrorType.NOT_OBJECT, "got number"),
        (b"true", ErrorType.NOT_OBJECT, "got boolean"),
        (b'{"id": 5, "text": ["a"]}', ErrorType.VALIDATION, "text: Input should be a valid string"),
        (b'{"id": [1], "text": "a"}', ErrorType.VALIDATION, "id: Input should be a valid string"),
        (b'{"id": {"a": 1}, "text": "a"}', ErrorType.VALIDATION, "id:"),
        (b'{"id": true, "text": "a"}', ErrorType.VALIDATION, "id:"),
        (b'{"id": 1.5, "text": "a"}', ErrorType.VALIDATION, "id:"),
        (b'{"id": "", "text": "a"}', ErrorType.VALIDATION, "id: String should have at least 1 character"),
        (b'{"id": "a", "text": 5}', ErrorType.VALIDATION, "text: Input should be a valid string"),
        (b'{"text": "a"}', ErrorType.VALIDATION, "id: Field required"),
        (b'{"id": "a", "text": "a", "metadata": [1]}', ErrorType.VALIDATION, "metadata:"),
        (b'{"id": "a", "text": "a", "timestamp": "yesterday"}', ErrorType.VALIDATION, "timestamp:"),
        (b'{"id": "a", "text": "a", "key": 3}', ErrorType.VALIDATION, "key:"),
        (b'{"id": "a", "text": ""}', ErrorType.EMPTY_TEXT, "text: text is empty or whitespace-only"),
        (b'{"id": "a", "text": " \\n\\t "}', ErrorType.EMPTY_TEXT, "whitespace-only"),
    ],
)
def test_bad_input_raises_schema_error(data: bytes | None, error_type: ErrorType, in_reason: str) -> None:
    with pytest.raises(SchemaError) as info:
        decode(InputMessage, data)
    err = info.value
    assert err.error_type == error_type
    assert in_reason in err.reason
    assert str(err) == err.reason
    assert "\n" not in err.reason and err.reason.strip() == err.reason


def test_overlong_id_rejected() -> None:
    with pytest.raises(SchemaError, match="id: String should have at most 256 characters"):
        decode(InputMessage, orjson.dumps({"id": "x" * 257, "text": "a"}))
    assert decode(InputMessage, orjson.dumps({"id": "x" * 256, "text": "a"})).id == "x" * 256


def test_oversize_checked_before_parsing() -> None:
    data = b'{"id": "a", "text": "' + b"x" * 100 + b'"}'
    with pytest.raises(SchemaError) as info:
        decode(InputMessage, data, max_bytes=50)
    assert info.value.error_type == ErrorType.OVERSIZE
    assert str(len(data)) in info.value.reason and "50" in info.value.reason
    assert decode(InputMessage, data, max_bytes=len(data)).text == "x" * 100


def test_blank_text_with_other_errors_is_validation() -> None:
    with pytest.raises(SchemaError) as info:
        decode(InputMessage, b'{"id": [], "text": "  "}')
    assert info.value.error_type == ErrorType.VALIDATION
    assert "id:" in info.value.reason and "text:" in info.value.reason


def test_validation_reason_is_summarised_and_free_of_content() -> None:
    secret = "do-not-leak-this-text"
    data = orjson.dumps(
        {
            "model_id": secret,
            "label": secret,
            "label_name": [secret],
            "probabilities": secret,
            "anomaly_score": secret,
            "final_label": secret,
            "final_label_name": 1,
            "n_tokens": secret,
            "scored_at": secret,
        }
    )
    with pytest.raises(SchemaError) as info:
        decode(PredictionRecord, data)
    err = info.value
    assert secret not in err.reason
    assert err.reason.startswith("invalid PredictionRecord: ")
    assert err.reason.count(": ") == MAX_REASON_ERRORS + 1
    assert f"(+{len(err.errors) - MAX_REASON_ERRORS} more)" in err.reason
    assert {"loc": "id", "msg": "Field required", "type": "missing"} in err.errors
    assert all(set(e) == {"loc", "msg", "type"} for e in err.errors)


def test_nested_error_location_is_dotted(audit: AuditRecord) -> None:
    payload = orjson.loads(encode(audit))
    payload["tokens"][1]["attention"] = "high"
    with pytest.raises(SchemaError, match=r"tokens\.1\.attention: "):
        decode(AuditRecord, orjson.dumps(payload))


def test_records_refuse_non_finite_numbers(prediction: PredictionRecord) -> None:
    # JSON has no NaN/inf (orjson would write null), so models refuse them at construction
    fields = prediction.model_dump()
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            PredictionRecord(**(fields | {"anomaly_score": value}))
