"""The audit reader: records from audit files or the audit topic, parsed for people and tools.

``parse_output(raw)`` reads one record as the worker (or ``replay``) writes it, from any schema version:
a record with a ``text`` is an ``AuditRecord`` (its evidence: tokens, suspicious words, both
predictions), one with ``error_type`` a ``DeadLetterRecord``, anything else a ``PredictionRecord``.
Fields a writer did not know are defaulted and unknown fields ignored (``schemas.outputs``' policy), so
records from older and newer writers parse alike; what cannot parse becomes an :class:`AuditError` with
a one-line reason instead of stopping the reader.

Sources yield :class:`AuditItem` (the raw bytes, kept for ``--json`` pass-through, and the parsed
record) in order: ``file_items`` for JSONL files (``-`` = stdin), ``topic_items`` for a topic
(see :mod:`consumers.kafka.topic_reader`; confluent_kafka is imported only there).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from schemas import AuditRecord, DeadLetterRecord, PredictionRecord, SchemaError, decode
from stream_guard.errors import StreamGuardError

Record = AuditRecord | PredictionRecord | DeadLetterRecord


@dataclass(frozen=True)
class AuditError:
    where: str
    reason: str


@dataclass(frozen=True)
class AuditItem:
    raw: bytes
    where: str
    record: Record | AuditError

    @property
    def audit(self) -> AuditRecord | None:
        """The record if it is a decision with its evidence (flagged or not), else None."""
        return self.record if isinstance(self.record, AuditRecord) else None


def record_class(payload: dict[str, Any]) -> type[Record]:
    if "text" in payload:
        return AuditRecord
    if "error_type" in payload or "reason" in payload:
        return DeadLetterRecord
    return PredictionRecord


def parse_output(raw: bytes, where: str = "") -> Record | AuditError:
    """One output record of any schema version, or the reason it is not one."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None  # decode() below gives the precise one-line reason
    cls = record_class(payload) if isinstance(payload, dict) else AuditRecord
    try:
        return decode(cls, raw)
    except SchemaError as err:
        return AuditError(where, err.reason)


def _line_items(name: str, lines: Iterable[bytes]) -> Iterator[AuditItem]:
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if raw.strip():
            where = f"{name}:{number}"
            yield AuditItem(raw, where, parse_output(raw, where))


def file_items(paths: Iterable[str]) -> Iterator[AuditItem]:
    """Records of JSONL files, file after file, line after line."""
    for path in paths:
        if path == "-":
            yield from _line_items("stdin", sys.stdin.buffer)
            continue
        file = Path(path)
        if not file.is_file():
            raise StreamGuardError(f"input file not found: {path}")
        with file.open("rb") as fh:
            yield from _line_items(path, fh)


def topic_items(topic: str, **range_args: Any) -> Iterator[AuditItem]:
    """Records of the audit topic (``TopicRange`` arguments: follow, max_messages, idle_timeout...)."""
    from consumers.kafka.settings import KafkaSettings
    from consumers.kafka.topic_reader import TopicRange, read_topic

    for message in read_topic(KafkaSettings(), TopicRange(topic=topic, **range_args)):
        raw = message.value or b""
        yield AuditItem(raw, message.where, parse_output(raw, message.where))
