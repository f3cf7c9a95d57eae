"""Offline replay: historical messages -> the live worker's message path -> the same records.

A replay reads raw message values (JSON bytes, exactly as they sit on an input topic) from a file or a
topic range (:mod:`consumers.replay.sources`, :mod:`consumers.kafka.topic_reader`) as
:class:`~consumers.pipeline.envelope.Envelope` s and runs them through the worker's own
:class:`~consumers.pipeline.message_path.MessagePipeline`: the same validation, the same judging (with
the same poison-message rule) and the same record mapping, so a clean message gives the
``PredictionRecord`` and a flagged one the ``AuditRecord`` that the worker would publish, and a bad
one (or one whose judging raised alone) the same ``DeadLetterRecord``. Records come out in input order.

Determinism: the same input, model, settings and threshold give byte-identical output. Nothing depends
on the wall clock: ``scored_at`` (and a dead letter's ``received_at``) is

1. the ``--scored-at`` value when given (one fixed time for the whole replay), else
2. the message's own ``timestamp`` field, else
3. the Kafka record's timestamp (topic replays), else
4. the Unix epoch, ``1970-01-01T00:00:00Z`` (file lines without a timestamp).

Batches are cut by count only (never by time), and topic partitions are read one after another in
partition order, so neither thread scheduling nor broker timing can reorder or regroup the output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from consumers.pipeline.envelope import Envelope
from consumers.pipeline.message_path import MessagePipeline, Output, RecordTime
from schemas import DeadLetterRecord, InputMessage

if TYPE_CHECKING:  # `stream-guard --help` imports this module: no torch until a replay runs
    from stream_guard.defender import Defender, TokenDetail

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_BATCH = 64
MAX_MESSAGE_BYTES = 1_000_000  # the worker's default (WorkerSettings.max_message_bytes; a test checks)


def replay_time(fixed: datetime | None = None) -> RecordTime:
    """The deterministic record time of a replay (see the module docstring for the order)."""

    def at(envelope: Envelope, message: InputMessage | None) -> datetime:
        if fixed is not None:
            return fixed
        if message is not None and message.timestamp is not None:
            return message.timestamp
        return envelope.timestamp or EPOCH

    return at


def replay_pipeline(
    defender: Defender,
    *,
    scored_at: datetime | None = None,
    tokens: TokenDetail = "flagged",
    max_bytes: int | None = MAX_MESSAGE_BYTES,
) -> MessagePipeline:
    """The worker's message path with the replay's deterministic record time."""
    return MessagePipeline(defender, max_bytes=max_bytes, record_time=replay_time(scored_at), tokens=tokens)


def replay(
    defender: Defender,
    messages: Iterable[Envelope],
    *,
    batch_size: int = DEFAULT_BATCH,
    scored_at: datetime | None = None,
    tokens: TokenDetail = "flagged",
    max_bytes: int | None = MAX_MESSAGE_BYTES,
) -> Iterator[Output]:
    """The records for `messages`, in order (prediction, audit or dead letter for each)."""
    pipeline = replay_pipeline(defender, scored_at=scored_at, tokens=tokens, max_bytes=max_bytes)
    return pipeline.run(messages, batch_size=batch_size)


@dataclass
class ReplaySummary:
    """What a replay did: counts, the flagged rate and label changes."""

    read: int = 0
    scored: int = 0
    dead_letters: int = 0
    flagged: int = 0
    label_changes: int = 0  # flagged records whose final label differs from the original one
    labels: Counter[str] = field(default_factory=Counter)  # final label name -> count
    errors: Counter[str] = field(default_factory=Counter)  # dead-letter error type -> count

    def add(self, judged: Output) -> None:
        self.read += 1
        record = judged.record
        if isinstance(record, DeadLetterRecord):
            self.dead_letters += 1
            self.errors[record.error_type] += 1
            return
        self.scored += 1
        self.labels[record.final_label_name] += 1
        if record.flagged:
            self.flagged += 1
        if record.final_label != record.label:
            self.label_changes += 1

    @property
    def flagged_rate(self) -> float:
        return self.flagged / self.scored if self.scored else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "scored": self.scored,
            "dead_letters": self.dead_letters,
            "flagged": self.flagged,
            "flagged_rate": self.flagged_rate,
            "label_changes": self.label_changes,
            "labels": dict(sorted(self.labels.items())),
            "errors": dict(sorted(self.errors.items())),
        }
