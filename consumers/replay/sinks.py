"""Where replayed records go: a JSONL file, a Parquet file (with pyarrow), or the output topics.

- JSONL: one record per line, ``schemas.encode`` bytes exactly as on the topics (clean verdicts as
  ``PredictionRecord``, flagged ones as ``AuditRecord``). Dead letters go to a separate file when one is
  given (``--errors``), never into the verdicts. A file is written under a temporary name and renamed
  when complete, so an interrupted replay never leaves a half file that looks whole.
- Parquet: one row per record with the scalar fields as columns (``record_type``, ``id``, ``model_id``,
  ``label``, ``label_name``, ``final_label``, ``final_label_name``, ``flagged``, ``anomaly_score``,
  ``threshold``, ``threshold_version``, ``n_tokens``, ``truncated``, ``scored_at``, ``source_topic``,
  ``source_partition``, ``source_offset``) and ``record``, the full record's JSON. Needs ``pyarrow``.
- Topics: ``TopicSink`` (:mod:`consumers.replay.topic_sink`) produces to predictions / audit / dead-letter
  topics like the worker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any, Protocol

from consumers.pipeline.message_path import Output
from schemas import AuditRecord, DeadLetterRecord, encode
from stream_guard.errors import StreamGuardError

PARQUET_SUFFIXES = (".parquet", ".pq")
ROW_GROUP = 10_000


class Sink(Protocol):
    def write(self, judged: Output) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def _bytes(judged: Output) -> bytes:
    """The record's bytes as the message path encoded them (a record that cannot be encoded is already
    its message's dead letter there: :mod:`consumers.pipeline.wire`)."""
    return judged.value if judged.value is not None else encode(judged.record)


class _AtomicFile:
    """A binary file written as ``<name>.part`` and renamed on ``commit``; ``-`` is stdout."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self.fh: IO[bytes] = sys.stdout.buffer
            self._tmp: Path | None = None
            return
        target = Path(path)
        if target.parent and not target.parent.is_dir():
            raise StreamGuardError(f"output folder does not exist: {target.parent}")
        self._tmp = target.with_name(target.name + ".part")
        self.fh = self._tmp.open("wb")

    def commit(self) -> None:
        self.fh.flush()
        if self._tmp is not None:
            self.fh.close()
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._tmp is not None:
            self.fh.close()
            self._tmp.unlink(missing_ok=True)


class JsonlSink:
    """Verdict records to `path` (``-`` = stdout); dead letters to `errors_path` when given."""

    def __init__(self, path: str, errors_path: str | None = None) -> None:
        self._out = _AtomicFile(path)
        self._errors = _AtomicFile(errors_path) if errors_path else None

    def write(self, judged: Output) -> None:
        if isinstance(judged.record, DeadLetterRecord):
            if self._errors is not None:
                self._errors.fh.write(_bytes(judged) + b"\n")
            return
        self._out.fh.write(_bytes(judged) + b"\n")

    def close(self) -> None:
        self._out.commit()
        if self._errors is not None:
            self._errors.commit()

    def abort(self) -> None:
        self._out.abort()
        if self._errors is not None:
            self._errors.abort()


def parquet_row(judged: Output) -> dict[str, Any]:
    record = judged.record
    assert not isinstance(record, DeadLetterRecord)
    source = record.source
    return {
        "record_type": "audit" if isinstance(record, AuditRecord) else "prediction",
        "id": record.id,
        "model_id": record.model_id,
        "label": record.label,
        "label_name": record.label_name,
        "final_label": record.final_label,
        "final_label_name": record.final_label_name,
        "flagged": record.flagged,
        "anomaly_score": record.anomaly_score,
        "threshold": record.threshold,
        "threshold_version": record.threshold_version,
        "n_tokens": record.n_tokens,
        "truncated": record.truncated,
        "scored_at": record.scored_at.isoformat(),
        "source_topic": source.topic if source else None,
        "source_partition": source.partition if source else None,
        "source_offset": source.offset if source else None,
        "record": _bytes(judged).decode("utf-8"),
    }


class ParquetSink:
    """Verdict records as Parquet rows (see the module docstring); dead letters as JSONL to `errors_path`."""

    def __init__(self, path: str, errors_path: str | None = None) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise StreamGuardError("Parquet output needs pyarrow: pip install pyarrow") from None
        self._pa, self._pq = pa, pq
        self._schema = pa.schema(
            [
                ("record_type", pa.string()),
                ("id", pa.string()),
                ("model_id", pa.string()),
                ("label", pa.int64()),
                ("label_name", pa.string()),
                ("final_label", pa.int64()),
                ("final_label_name", pa.string()),
                ("flagged", pa.bool_()),
                ("anomaly_score", pa.float64()),
                ("threshold", pa.float64()),
                ("threshold_version", pa.string()),
                ("n_tokens", pa.int64()),
                ("truncated", pa.bool_()),
                ("scored_at", pa.string()),
                ("source_topic", pa.string()),
                ("source_partition", pa.int64()),
                ("source_offset", pa.int64()),
                ("record", pa.string()),
            ]
        )
        self._file = _AtomicFile(path)
        self._writer = pq.ParquetWriter(self._file.fh, self._schema, compression="zstd")
        self._rows: list[dict[str, Any]] = []
        self._errors = _AtomicFile(errors_path) if errors_path else None

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(self._pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def write(self, judged: Output) -> None:
        if isinstance(judged.record, DeadLetterRecord):
            if self._errors is not None:
                self._errors.fh.write(_bytes(judged) + b"\n")
            return
        self._rows.append(parquet_row(judged))
        if len(self._rows) >= ROW_GROUP:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._file.commit()
        if self._errors is not None:
            self._errors.commit()

    def abort(self) -> None:
        self._writer.close()
        self._file.abort()
        if self._errors is not None:
            self._errors.abort()


def file_sink(path: str, errors_path: str | None = None) -> Sink:
    """A Parquet sink for ``.parquet``/``.pq`` paths, JSONL otherwise."""
    if path.lower().endswith(PARQUET_SUFFIXES):
        return ParquetSink(path, errors_path)
    return JsonlSink(path, errors_path)
