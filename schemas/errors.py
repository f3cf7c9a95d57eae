"""The error raised when bytes off the wire do not make a valid record, and its categories."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorType(StrEnum):
    """Why a message went to the dead-letter topic (``DeadLetterRecord.error_type``).

    The field on the wire is a plain string so that readers tolerate categories added later.
    """

    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    VALIDATION = "validation"
    EMPTY_TEXT = "empty_text"
    OVERSIZE = "oversize"
    INTERNAL = "internal"
    UNENCODABLE = "unencodable"
    """A valid message whose output record cannot be serialized (e.g. metadata nested too deep)."""
    OUTPUT_TOO_LARGE = "output_too_large"
    """A valid message whose output record is over the producer's ``message.max.bytes``."""
    REJECTED = "rejected"
    """The producer refused the message's output record for its size or content."""


class SchemaError(ValueError):
    """Bytes that do not decode into the requested record.

    ``reason`` is one line, short enough for a dead-letter record and free of the message's content;
    ``error_type`` is an :class:`ErrorType`; ``errors`` lists ``{"loc", "msg", "type"}`` per field for
    validation failures (empty otherwise).
    """

    def __init__(
        self,
        reason: str,
        error_type: ErrorType = ErrorType.VALIDATION,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.reason = " ".join(reason.split())
        self.error_type = ErrorType(error_type)
        self.errors = errors or []
        super().__init__(self.reason)
