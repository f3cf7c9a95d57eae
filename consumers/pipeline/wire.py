"""Output records as the bytes a destination takes, with the per-message failure rule.

A failure that belongs to one message never stops a partition. When a message's output record cannot
be written — it cannot be serialized (metadata nested deeper than the encoder writes), it is larger than
the producer's ``message.max.bytes``, or the producer refuses it (:func:`rejected`) — the message goes
to the dead-letter topic instead, with what could be kept of it (its original bytes, cut to fit) and
why (``error_type`` ``unencodable``, ``output_too_large`` or ``rejected``), and the partition moves on.
Only failures of the infrastructure (the broker, the model) stop the worker.

The dead letter itself is built to fit: its Kafka key and every copy of the input key in it are cut to
:data:`schemas.dead_letter.MAX_KEY_BYTES` (1 KiB; less under limits of a few kilobytes), and the original
value to what leaves the record under the limit (:meth:`schemas.DeadLetterRecord.from_raw` with
``max_record_bytes``). librdkafka's smallest ``message.max.bytes`` (1,000) still takes one.

``max_bytes`` is the destination's ``message.max.bytes`` (:func:`message_max_bytes` of the producer's
config); None means no limit (a file), where only the serialization rule applies. Kafka-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consumers.pipeline.envelope import Envelope
from schemas import AuditRecord, DeadLetterRecord, ErrorType, PredictionRecord, encode
from schemas.dead_letter import MAX_KEY_BYTES

__all__ = [
    "DEFAULT_MESSAGE_MAX_BYTES",
    "RECORD_OVERHEAD_BYTES",
    "Wire",
    "fits",
    "message_max_bytes",
    "rejected",
    "to_wire",
]

DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``: the producer refuses a larger key + value."""
RECORD_OVERHEAD_BYTES = 100
"""What a record adds to key + value against ``message.max.bytes`` (librdkafka counts up to 36 bytes)."""

WireRecord = PredictionRecord | AuditRecord | DeadLetterRecord


@dataclass(frozen=True, slots=True)
class Wire:
    """An output record with its bytes and Kafka key, ready to produce or write."""

    record: WireRecord
    value: bytes
    key: bytes | None


def message_max_bytes(config: Mapping[str, Any]) -> int:
    """The ``message.max.bytes`` of a librdkafka config (its default when unset)."""
    return int(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))


def _kind(record: WireRecord) -> str:
    if isinstance(record, DeadLetterRecord):
        return "dead-letter"
    return "audit" if record.flagged else "prediction"


def fits(value: bytes, key: bytes | None, max_bytes: int | None) -> bool:
    """Whether a record of ``value`` under ``key`` can be produced under ``max_bytes`` (None: any)."""
    room = _room(max_bytes, key)
    return room is None or len(value) <= room


def _room(max_bytes: int | None, key: bytes | None) -> int | None:
    """The bytes a record's value may take under ``max_bytes`` beside ``key``."""
    if max_bytes is None:
        return None
    return max_bytes - len(key or b"") - RECORD_OVERHEAD_BYTES


def to_wire(envelope: Envelope, record: WireRecord, max_bytes: int | None) -> Wire:
    """``record``'s bytes under the input's key; its message's dead letter instead when they cannot be
    written (see the module docstring). Never raises for what one message holds."""
    if isinstance(record, DeadLetterRecord):
        return _dead_letter_wire(envelope, record, max_bytes)
    try:
        value = encode(record)
    except Exception as error:  # this record alone: too deep, or a value JSON cannot carry
        reason = f"its {_kind(record)} record cannot be encoded: {type(error).__name__}: {error}"
        return rejected(envelope, record, reason, ErrorType.UNENCODABLE, max_bytes)
    room = _room(max_bytes, envelope.key)
    if room is not None and len(value) > room:
        reason = (
            f"its {_kind(record)} record is {len(value):,} bytes with a {len(envelope.key or b''):,}-byte"
            f" key, over the producer's message.max.bytes of {max_bytes:,}"
        )
        return rejected(envelope, record, reason, ErrorType.OUTPUT_TOO_LARGE, max_bytes)
    return Wire(record, value, envelope.key)


def rejected(
    envelope: Envelope,
    record: WireRecord,
    reason: str,
    error_type: ErrorType = ErrorType.REJECTED,
    max_bytes: int | None = None,
) -> Wire:
    """The dead letter of a message whose output ``record`` cannot be written, and why: its original
    bytes (as many as fit ``max_bytes``), its id, and the time the record carried (replays stay
    deterministic)."""
    if isinstance(record, DeadLetterRecord):  # its own dead letter was refused: say both
        reason, at = f"{record.error_type}: {record.reason}; then {reason}", record.received_at
    else:
        at = record.scored_at
    dead = DeadLetterRecord.from_raw(
        envelope.value, envelope.key, reason, error_type, envelope.source, id=record.id, received_at=at
    )
    return _dead_letter_wire(envelope, dead, max_bytes)


def _dead_letter_wire(envelope: Envelope, dead: DeadLetterRecord, max_bytes: int | None) -> Wire:
    """A dead letter's bytes and key, cut until they fit ``max_bytes``: the original value first, then
    (only under limits of a few kilobytes) the key copies and the reason."""
    if max_bytes is None:
        key = envelope.key[:MAX_KEY_BYTES] if envelope.key is not None else None
        return Wire(dead, encode(dead), key)
    room = max_bytes - RECORD_OVERHEAD_BYTES
    key_bytes = max(0, min(MAX_KEY_BYTES, room // 16))  # every copy of the key: under half the room
    key = envelope.key[:key_bytes] if envelope.key is not None else None
    value = encode(dead)
    for reason in (dead.reason, dead.reason[:100]):
        if len(value) + len(key or b"") <= room:
            break
        dead = DeadLetterRecord.from_raw(
            envelope.value,
            envelope.key,
            reason,
            dead.error_type,
            envelope.source,
            id=dead.id,
            received_at=dead.received_at,
            max_key_bytes=key_bytes,
            max_record_bytes=room - len(key or b""),
        )
        value = encode(dead)
    return Wire(dead, value, key)
