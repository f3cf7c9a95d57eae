"""Validate raw input messages; what fails becomes a dead letter (reason + original bytes).

A message is scorable when its value decodes into an :class:`schemas.InputMessage` (JSON object, valid
UTF-8, at most ``max_bytes``, an id and a non-blank string text) and its text passes the defender's
``clean`` (length limit, not only control characters). Everything else maps onto a
:class:`schemas.DeadLetterRecord` whose ``error_type`` says why:

==============================================  ==============
value                                           error_type
==============================================  ==============
null / empty / not JSON                         ``not_json``
bytes that are not UTF-8                        ``invalid_utf8``
JSON that is not an object                      ``not_object``
missing id or text, wrong types                 ``validation``
blank text                                      ``empty_text``
over ``max_bytes`` or the defender's char limit ``oversize``
scoring raised for this message alone           ``internal``
==============================================  ==============

Kafka-free: the worker passes the coordinates in a :class:`schemas.SourceRef`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from schemas import DeadLetterRecord, ErrorType, InputMessage, SchemaError, SourceRef, decode
from stream_guard.errors import InvalidTextError

__all__ = ["Accepted", "internal_dead_letter", "validate_message"]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message ready to score: the decoded record and its cleaned text."""

    message: InputMessage
    text: str


def _error_type(kind: str) -> ErrorType:
    try:
        return ErrorType(kind)
    except ValueError:
        return ErrorType.VALIDATION


def validate_message(
    value: bytes | None,
    key: bytes | None,
    source: SourceRef | None,
    *,
    clean: Callable[[object], str],
    max_bytes: int | None,
    received_at: datetime | None = None,
) -> Accepted | DeadLetterRecord:
    """Decode and clean one message; a DeadLetterRecord (never an exception) when it cannot be scored.

    ``clean`` is ``Defender.clean`` (raises InvalidTextError with a ``kind``); ``received_at`` stamps
    a dead letter (None: now).
    """
    try:
        message = decode(InputMessage, value, max_bytes=max_bytes)
    except SchemaError as error:
        return DeadLetterRecord.from_raw(
            value, key, error.reason, error.error_type, source, received_at=received_at
        )
    try:
        text = clean(message.text)
    except InvalidTextError as error:
        return DeadLetterRecord.from_raw(
            value, key, str(error), _error_type(error.kind), source, id=message.id, received_at=received_at
        )
    return Accepted(message, text)


def internal_dead_letter(
    value: bytes | None,
    key: bytes | None,
    source: SourceRef | None,
    error: BaseException,
    message_id: str,
    received_at: datetime | None = None,
) -> DeadLetterRecord:
    """A dead letter for a message whose scoring raised (a bug or a poison text), with the error's class."""
    reason = f"scoring failed: {type(error).__name__}: {error}".splitlines()[0][:500]
    return DeadLetterRecord.from_raw(
        value, key, reason, ErrorType.INTERNAL, source, id=message_id, received_at=received_at
    )
