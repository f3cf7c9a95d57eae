"""Bytes ⇄ records, with orjson. ``decode`` turns every failure into a one-line :class:`SchemaError`."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from schemas.errors import ErrorType, SchemaError

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_REASON_ERRORS = 5
"""At most this many field errors are spelled out in a validation reason; the rest are counted."""

_JSON_TYPE_NAMES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def encode(model: BaseModel) -> bytes:
    """Serialize a record to compact JSON bytes (datetimes as RFC 3339 strings)."""
    return orjson.dumps(model.model_dump(mode="json"))


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def _validation_error(exc: ValidationError, model_name: str) -> SchemaError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    summary = [{"loc": _loc(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in errors]
    parts = [f"{err['loc']}: {err['msg']}" for err in summary[:MAX_REASON_ERRORS]]
    if len(summary) > MAX_REASON_ERRORS:
        parts.append(f"(+{len(summary) - MAX_REASON_ERRORS} more)")
    error_type = (
        ErrorType.EMPTY_TEXT
        if summary and all(err["type"] == "empty_text" for err in summary)
        else ErrorType.VALIDATION
    )
    return SchemaError(f"invalid {model_name}: " + "; ".join(parts), error_type, summary)


def decode(
    model_cls: type[ModelT],
    data: bytes | bytearray | memoryview | None,
    *,
    max_bytes: int | None = None,
) -> ModelT:
    """Parse JSON bytes into ``model_cls``.

    Raises :class:`SchemaError` (never anything else for bad input) whose ``error_type`` is
    ``oversize`` (more than ``max_bytes``), ``not_json`` (null/empty value or bad syntax),
    ``invalid_utf8``, ``not_object``, ``empty_text`` (the only problem is blank text) or ``validation``.
    """
    if data is None:
        raise SchemaError("message value is null", ErrorType.NOT_JSON)
    if max_bytes is not None and len(data) > max_bytes:
        reason = f"message is {len(data)} bytes, over the {max_bytes}-byte limit"
        raise SchemaError(reason, ErrorType.OVERSIZE)
    if len(data) == 0:
        raise SchemaError("message value is empty", ErrorType.NOT_JSON)
    try:
        payload: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(data).decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise SchemaError(
                f"invalid UTF-8 at byte {uexc.start}: {uexc.reason}", ErrorType.INVALID_UTF8
            ) from None
        raise SchemaError(
            f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", ErrorType.NOT_JSON
        ) from None
    if not isinstance(payload, dict):
        kind = "null" if payload is None else _JSON_TYPE_NAMES.get(type(payload), type(payload).__name__)
        raise SchemaError(f"expected a JSON object, got {kind}", ErrorType.NOT_OBJECT)
    try:
        return model_cls.model_validate(payload)
    except ValidationError as exc:
        raise _validation_error(exc, model_cls.__name__) from None
