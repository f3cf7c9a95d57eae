"""The per-message failure rule of the message path (consumers/pipeline/wire.py), without a broker: a
record that cannot be written becomes its message's dead letter, and every dead letter fits the limit."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from consumers.pipeline.envelope import Envelope
from consumers.pipeline.wire import RECORD_OVERHEAD_BYTES, fits, message_max_bytes, rejected, to_wire
from schemas import DeadLetterRecord, PredictionRecord, SourceRef, decode, encode
from schemas.dead_letter import MAX_KEY_BYTES

AT = datetime(2026, 1, 2, tzinfo=UTC)
LIMIT = 100_000


def _envelope(value: bytes, key: bytes | None = b"k1") -> Envelope:
    return Envelope(value, key, SourceRef.from_kafka("in", 0, 7, key), AT, "in[0]@7")


def _prediction(metadata: object = None) -> PredictionRecord:
    return PredictionRecord(
        id="m1",
        model_id="tiny@1",
        label=1,
        label_name="positive",
        probabilities=[0.2, 0.8],
        anomaly_score=0.1,
        threshold=0.5,
        threshold_version="v1",
        flagged=False,
        final_label=1,
        final_label_name="positive",
        truncated=False,
        n_tokens=4,
        metadata=metadata,
        scored_at=AT,
    )


def _deep(depth: int) -> object:
    return orjson.loads(b'{"d":' * depth + b"1" + b"}" * depth)


def test_a_record_that_fits_is_its_own_bytes() -> None:
    record = _prediction({"n": 1})
    wire = to_wire(_envelope(b'{"id": "m1", "text": "x"}'), record, LIMIT)
    assert wire.record is record and wire.value == encode(record) and wire.key == b"k1"


def test_a_record_that_cannot_be_encoded_becomes_its_dead_letter() -> None:
    value = b'{"id": "m1", "text": "x", "metadata": ' + b'{"d":' * 300 + b"1" + b"}" * 301
    for limit in (LIMIT, None):  # a file (no limit) takes the rule too
        wire = to_wire(_envelope(value), _prediction(_deep(300)), limit)
        dead = wire.record
        assert isinstance(dead, DeadLetterRecord) and dead.error_type == "unencodable"
        assert (
            dead.id == "m1"
            and dead.received_at == AT
            and "prediction record cannot be encoded" in dead.reason
        )
        assert dead.original_value() == value and decode(DeadLetterRecord, wire.value) == dead


def test_a_record_over_the_limit_becomes_a_dead_letter_that_fits() -> None:
    value = orjson.dumps({"id": "m1", "text": "x", "metadata": {"blob": "y" * 200_000}})
    wire = to_wire(_envelope(value), _prediction({"blob": "y" * 200_000}), LIMIT)
    dead = wire.record
    assert isinstance(dead, DeadLetterRecord) and dead.error_type == "output_too_large"
    assert "message.max.bytes of 100,000" in dead.reason
    assert dead.original_size == len(value) and dead.original_truncated
    assert value.startswith(dead.original_value() or b"-")
    assert fits(wire.value, wire.key, LIMIT)
    assert len(wire.value) > LIMIT - 2_000, "keeps as much of the original as fits"
    # the same record without a limit is written whole
    assert to_wire(_envelope(value), _prediction({"blob": "y" * 200_000}), None).record.id == "m1"


@pytest.mark.parametrize("limit", [1_000, 10_000, LIMIT, 1_000_000])
def test_a_dead_letter_with_a_huge_key_fits(limit: int) -> None:
    key = bytes(range(256)) * 2_000  # 512,000 bytes, not UTF-8
    value = b"\xff" * 300_000
    admitted = DeadLetterRecord.from_raw(
        value, key, "not UTF-8", "invalid_utf8", SourceRef.from_kafka("in", 0, 7, key)
    )
    wire = to_wire(_envelope(value, key), admitted, limit)
    dead = wire.record
    assert isinstance(dead, DeadLetterRecord) and dead.error_type == "invalid_utf8"
    kept = dead.original_key() or b""
    assert wire.key and key.startswith(wire.key) and key.startswith(kept) and kept
    assert len(wire.key) <= MAX_KEY_BYTES and len(kept) <= MAX_KEY_BYTES
    if limit >= 100_000:  # 1 KiB of the key under ordinary limits; less under a few kilobytes
        assert wire.key == kept == key[:MAX_KEY_BYTES]
    assert dead.original_key_size == len(key) and dead.original_key_truncated
    assert dead.source is not None and len(dead.source.key or "") <= MAX_KEY_BYTES
    assert dead.original_size == len(value) and dead.original_truncated
    assert len(wire.value) + len(wire.key or b"") + RECORD_OVERHEAD_BYTES <= limit


def test_a_refused_output_becomes_a_rejected_dead_letter() -> None:
    value = b'{"id": "m1", "text": "x"}'
    wire = rejected(_envelope(value), _prediction(), "Broker: Message size too large", max_bytes=LIMIT)
    dead = wire.record
    assert isinstance(dead, DeadLetterRecord) and dead.error_type == "rejected" and dead.id == "m1"
    assert dead.original_value() == value and dead.reason == "Broker: Message size too large"
    # a refused dead letter says what it was first
    again = rejected(_envelope(value), dead, "refused again", max_bytes=LIMIT).record
    assert again.reason == "rejected: Broker: Message size too large; then refused again"


def test_message_max_bytes_reads_the_producer_config() -> None:
    assert message_max_bytes({}) == 1_000_000
    assert message_max_bytes({"message.max.bytes": "2000000"}) == 2_000_000
