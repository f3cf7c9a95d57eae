"""The message producers write to the input topic(s)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from schemas.base import SCHEMA_VERSION, UtcDatetime, WireModel

MAX_ID_LENGTH = 256


def _id_from_int(value: Any) -> Any:
    # producers often send numeric ids: accept integers (not booleans) and carry them as strings
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("empty_text", "text is empty or whitespace-only")
    return value


MessageId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    BeforeValidator(_id_from_int),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
                {"type": "integer"},
            ],
            "description": "Message id; an integer is accepted and carried as its decimal string.",
        }
    ),
]

MessageText = Annotated[
    str,
    AfterValidator(_non_blank),
    # `\S` approximates "non-empty after strip" for validators in other languages
    Field(json_schema_extra={"minLength": 1, "pattern": r"\S"}),
]

InputTimestamp = Annotated[
    Annotated[UtcDatetime, Strict(False)] | None,
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}],
            "description": "RFC 3339 string (naive = UTC) or Unix time in seconds or milliseconds.",
        }
    ),
]


class InputMessage(WireModel):
    """A text to classify, as read from an input topic.

    Types are checked strictly — a list or object where a string is expected is rejected, and numbers
    are not turned into text — with one deliberate exception: ``id`` accepts an integer (not a boolean)
    and converts it to its decimal string, because producers often key messages by numeric ids.
    ``text`` must contain a non-whitespace character; it is kept exactly as sent (character offsets in
    the audit record refer to it). ``timestamp`` accepts an RFC 3339 string or Unix seconds/milliseconds
    and is normalised to UTC. Unknown fields are ignored. ``schema_version`` may be omitted (current).
    """

    model_config = ConfigDict(strict=True)

    schema_version: int = Field(default=SCHEMA_VERSION, ge=0)
    id: MessageId
    text: MessageText
    key: str | None = None
    metadata: dict[str, Any] | None = None
    timestamp: InputTimestamp = None
