"""Where replayed messages come from: JSONL and CSV files (this module) or a topic range
(:mod:`consumers.kafka.topic_reader`). Each yields :class:`~consumers.pipeline.envelope.Envelope` s in a
fixed order.

- JSONL: every non-blank line is one message value, byte for byte as it would sit on the input topic
  (``{"id", "text", ...}``; see ``schemas.InputMessage``). ``-`` reads stdin.
- CSV (stdlib ``csv``, header row required): the ``id`` and ``text`` columns (names configurable) make
  the message; other non-empty columns go into its ``metadata``; an empty ``timestamp`` column is
  ignored. The message is encoded with orjson, so it is validated exactly like a JSONL line.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import orjson

from consumers.pipeline.envelope import Envelope
from stream_guard.errors import StreamGuardError

FileFormat = Literal["auto", "jsonl", "csv"]
CSV_SUFFIXES = (".csv", ".tsv")


def detect_format(path: str, fmt: FileFormat = "auto") -> Literal["jsonl", "csv"]:
    if fmt != "auto":
        return fmt
    return "csv" if path.lower().endswith(CSV_SUFFIXES) else "jsonl"


def _check_file(path: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise StreamGuardError(f"input file not found: {path}")
    return file


def jsonl_messages(path: str) -> Iterator[Envelope]:
    """One message per non-blank line (trailing newline and CR stripped)."""
    if path == "-":
        lines: Iterator[bytes] = iter(sys.stdin.buffer)
        yield from _lines("stdin", lines)
        return
    with _check_file(path).open("rb") as fh:
        yield from _lines(path, fh)


def _lines(name: str, lines: Iterator[bytes]) -> Iterator[Envelope]:
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield Envelope(raw.rstrip(b"\r\n"), where=f"{name}:{number}")


def csv_messages(path: str, id_column: str = "id", text_column: str = "text") -> Iterator[Envelope]:
    """One message per CSV row; `.tsv` files are tab-separated. Raises if a named column is missing."""
    file = sys.stdin if path == "-" else _check_file(path).open(encoding="utf-8", newline="")
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    try:
        reader = csv.DictReader(file, delimiter=delimiter)
        columns = reader.fieldnames or []
        for wanted in (id_column, text_column):
            if wanted not in columns:
                raise StreamGuardError(
                    f"{path}: no column {wanted!r} (columns: {', '.join(columns) or 'none'})"
                )
        for row in reader:
            line = reader.line_num
            message: dict[str, object] = {"id": row.get(id_column) or "", "text": row.get(text_column) or ""}
            timestamp = row.get("timestamp")
            if timestamp:
                message["timestamp"] = timestamp
            metadata = {
                k: v
                for k, v in row.items()
                if k not in (id_column, text_column, "timestamp") and k is not None and v not in (None, "")
            }
            if metadata:
                message["metadata"] = metadata
            yield Envelope(orjson.dumps(message), where=f"{path}:{line}")
    except UnicodeDecodeError as err:
        raise StreamGuardError(f"{path}: not UTF-8 (byte {err.start})") from None
    except csv.Error as err:
        raise StreamGuardError(f"{path}: bad CSV: {err}") from None
    finally:
        if file is not sys.stdin:
            file.close()


def file_messages(
    path: str, fmt: FileFormat = "auto", *, id_column: str = "id", text_column: str = "text"
) -> Iterator[Envelope]:
    """Messages of a JSONL or CSV file (format from the suffix unless given)."""
    if detect_format(path, fmt) == "csv":
        return csv_messages(path, id_column, text_column)
    return jsonl_messages(path)


def count_messages(path: str, fmt: FileFormat = "auto") -> int | None:
    """How many messages a file holds (for a progress bar's total); None for stdin."""
    if path == "-" or not Path(path).is_file():
        return None
    if detect_format(path, fmt) == "csv":
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())
