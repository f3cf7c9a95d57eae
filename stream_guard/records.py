"""Read `{"id", "text"}` records from JSONL (or `-` for stdin), one result per line, never raising on a
bad line: a bad line becomes a `RecordError` with its line number and a one-line reason."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stream_guard.errors import StreamGuardError


@dataclass(frozen=True)
class TextRecord:
    id: str
    text: str
    line: int
    extra: dict[str, Any]


@dataclass(frozen=True)
class RecordError:
    line: int
    reason: str
    id: str | None = None


def _open_lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    file = Path(path)
    if not file.is_file():
        raise StreamGuardError(f"input file not found: {path}")
    with file.open("rb") as fh:
        yield from fh


def parse_record(raw: bytes, line: int) -> TextRecord | RecordError:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return RecordError(line, f"invalid UTF-8 at byte {err.start}")
    try:
        obj = orjson.loads(decoded)
    except orjson.JSONDecodeError as err:
        return RecordError(line, f"not JSON: {err}".splitlines()[0])
    if not isinstance(obj, dict):
        return RecordError(line, f"expected a JSON object, got {type(obj).__name__}")
    raw_id = obj.get("id", str(line))
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        return RecordError(line, f"'id' must be a string or integer, got {type(raw_id).__name__}")
    if "text" not in obj:
        return RecordError(line, "missing 'text'", str(raw_id))
    if not isinstance(obj["text"], str):
        return RecordError(line, f"'text' must be a string, got {type(obj['text']).__name__}", str(raw_id))
    extra = {k: v for k, v in obj.items() if k not in {"id", "text"}}
    return TextRecord(str(raw_id), obj["text"], line, extra)


def read_jsonl(path: str) -> Iterator[TextRecord | RecordError]:
    """Records of a JSONL file in order; blank lines are skipped. Missing file: StreamGuardError."""
    for number, raw in enumerate(_open_lines(path), start=1):
        if raw.strip():
            yield parse_record(raw.rstrip(b"\r\n"), number)
