"""The dead-letter record: an input message that could not be scored, kept with the reason.

The original key and value travel base64-encoded (they may not be UTF-8 or JSON). Values longer than
``max_original_bytes`` are cut so the dead letter itself stays under the broker's message size limit;
``original_size`` is always the full size and ``original_truncated`` says whether bytes were cut.
"""

from __future__ import annotations

import base64
from typing import Self

import orjson
from pydantic import Field

from schemas.base import OutputRecord, SourceRef, UtcDatetime, utc_now
from schemas.errors import ErrorType, SchemaError
from schemas.input import MAX_ID_LENGTH

DEFAULT_MAX_ORIGINAL_BYTES = 256 * 1024
_MAX_ID_SCAN_BYTES = 1024 * 1024  # don't parse huge payloads just to recover an id


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data is not None else None


def _recover_id(value: bytes | None) -> str | None:
    """The ``id`` of a JSON object payload, if there is a usable one (string or integer)."""
    if not value or len(value) > _MAX_ID_SCAN_BYTES:
        return None
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    raw = payload.get("id")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw)
    return text[:MAX_ID_LENGTH] if text else None


class DeadLetterRecord(OutputRecord):
    """A message that could not be processed (dead-letter topic).

    ``error_type`` is one of :class:`schemas.ErrorType` (``invalid_utf8``, ``not_json``, ``not_object``,
    ``validation``, ``empty_text``, ``oversize``, ``internal``); readers must tolerate other strings.
    ``id`` is the message's id when it could be recovered from the payload.
    """

    reason: str = Field(min_length=1)
    error_type: str = Field(min_length=1)
    original_value_b64: str | None = None
    original_key_b64: str | None = None
    original_size: int = Field(default=0, ge=0)
    original_truncated: bool = False
    source: SourceRef | None = None
    received_at: UtcDatetime
    id: str | None = None

    @classmethod
    def from_raw(
        cls,
        value: bytes | None,
        key: bytes | None,
        reason: str,
        error_type: ErrorType | str,
        source: SourceRef | None = None,
        *,
        id: str | None = None,
        received_at: UtcDatetime | None = None,
        max_original_bytes: int | None = DEFAULT_MAX_ORIGINAL_BYTES,
    ) -> Self:
        """Build a dead letter from the raw Kafka value and key.

        ``id`` defaults to the payload's ``id`` when the value is a JSON object carrying a string or
        integer id; ``received_at`` defaults to now (UTC); ``max_original_bytes=None`` keeps all bytes.
        """
        size = len(value) if value is not None else 0
        kept = value
        truncated = False
        if value is not None and max_original_bytes is not None and size > max_original_bytes:
            kept, truncated = value[:max_original_bytes], True
        return cls(
            reason=" ".join(reason.split()) or "unknown error",
            error_type=str(error_type),
            original_value_b64=_b64(kept),
            original_key_b64=_b64(key),
            original_size=size,
            original_truncated=truncated,
            source=source,
            received_at=received_at if received_at is not None else utc_now(),
            id=id if id is not None else _recover_id(value),
        )

    @classmethod
    def from_error(
        cls, value: bytes | None, key: bytes | None, error: SchemaError, source: SourceRef | None = None
    ) -> Self:
        """Shortcut for ``from_raw`` with the reason and error type of a :class:`SchemaError`."""
        return cls.from_raw(value, key, error.reason, error.error_type, source)

    def original_value(self) -> bytes | None:
        """The original value's bytes (only the kept prefix when ``original_truncated``)."""
        return base64.b64decode(self.original_value_b64) if self.original_value_b64 is not None else None

    def original_key(self) -> bytes | None:
        """The original key's bytes."""
        return base64.b64decode(self.original_key_b64) if self.original_key_b64 is not None else None
