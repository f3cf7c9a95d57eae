"""The dead-letter record: an input message that could not be scored, kept with the reason.

The original key and value travel base64-encoded (they may not be UTF-8 or JSON). A dead letter must
always be writable, whatever the message it stands for, so every copy of the input in it is bounded:

- the value: at most ``max_original_bytes`` (256 KiB by default), and fewer when the whole record must
  fit ``max_record_bytes`` (the producer's ``message.max.bytes`` less the key and the record overhead);
  ``original_size`` is always the full size and ``original_truncated`` says whether bytes were cut;
- the key (``original_key_b64`` and the text copy in ``source.key``): at most ``max_key_bytes`` (1 KiB by
  default); ``original_key_size`` is its full size and ``original_key_truncated`` whether it was cut;
- the reason: at most :data:`MAX_REASON_CHARS` characters.
"""

from __future__ import annotations

import base64
from typing import Self

import orjson
from pydantic import Field

from schemas.base import OutputRecord, SourceRef, UtcDatetime, utc_now
from schemas.codec import encode
from schemas.errors import ErrorType, SchemaError
from schemas.input import MAX_ID_LENGTH

DEFAULT_MAX_ORIGINAL_BYTES = 256 * 1024
MAX_KEY_BYTES = 1024
"""The most bytes of an input key a dead letter keeps (in ``original_key_b64`` and ``source.key``)."""
MAX_REASON_CHARS = 1000
_MAX_ID_SCAN_BYTES = 1024 * 1024  # don't parse huge payloads just to recover an id


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data is not None else None


def _cut(data: bytes | None, limit: int | None) -> tuple[bytes | None, bool]:
    """``data`` cut to ``limit`` bytes, and whether anything was cut."""
    if data is None or limit is None or len(data) <= limit:
        return data, False
    return data[:limit], True


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
    original_key_size: int = Field(default=0, ge=0)
    original_key_truncated: bool = False
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
        max_key_bytes: int | None = MAX_KEY_BYTES,
        max_record_bytes: int | None = None,
    ) -> Self:
        """Build a dead letter from the raw Kafka value and key.

        ``id`` defaults to the payload's ``id`` when the value is a JSON object carrying a string or
        integer id; ``received_at`` defaults to now (UTC); ``max_original_bytes=None`` keeps all bytes,
        ``max_key_bytes=None`` the whole key. With ``max_record_bytes`` the value is cut further until
        ``encode(record)`` fits it (a limit below the record without any value cannot be met).
        """
        kept, truncated = _cut(value, max_original_bytes)
        kept_key, key_truncated = _cut(key, max_key_bytes)
        if key_truncated and source is not None and source.key is not None and kept_key is not None:
            source = source.model_copy(update={"key": kept_key.decode("utf-8", errors="replace")})
        record = cls(
            reason=(" ".join(reason.split()) or "unknown error")[:MAX_REASON_CHARS],
            error_type=str(error_type),
            original_value_b64=_b64(kept),
            original_key_b64=_b64(kept_key),
            original_size=len(value) if value is not None else 0,
            original_truncated=truncated,
            original_key_size=len(key) if key is not None else 0,
            original_key_truncated=key_truncated,
            source=source,
            received_at=received_at if received_at is not None else utc_now(),
            id=id if id is not None else _recover_id(value),
        )
        if max_record_bytes is None or kept is None or len(encode(record)) <= max_record_bytes:
            return record
        # base64 writes 4 characters for every 3 bytes: keep the bytes whose characters fit
        bare = len(encode(record.model_copy(update={"original_value_b64": ""})))
        room = max(0, max_record_bytes - bare) // 4 * 3
        return record.model_copy(update={"original_value_b64": _b64(kept[:room]), "original_truncated": True})

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
        """The original key's bytes (only the kept prefix when ``original_key_truncated``)."""
        return base64.b64decode(self.original_key_b64) if self.original_key_b64 is not None else None
