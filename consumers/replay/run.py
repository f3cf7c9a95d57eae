"""Offline replay: historical messages -> the same defender as the live worker -> the same records.

A replay reads raw message values (JSON bytes, exactly as they sit on an input topic) from a file or a
topic range (:mod:`consumers.replay.sources`, :mod:`consumers.kafka.topic_reader`), validates them with the
worker's own check (``consumers.pipeline.admit.validate_message``), judges them in batches with a
:class:`~stream_guard.defender.Defender` (``tokens="flagged"``, as the worker) and maps each verdict
with :func:`consumers.pipeline.records.verdict_to_record`, so a clean message gives the
``PredictionRecord`` and a
flagged one the ``AuditRecord`` that the worker would publish, and a bad one the ``DeadLetterRecord``.
Records come out in input order.

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

from consumers.pipeline.admit import internal_dead_letter, validate_message
from consumers.pipeline.records import verdict_to_record
from schemas import AuditRecord, DeadLetterRecord, InputMessage, PredictionRecord, SourceRef
from stream_guard.verdict import Verdict

if TYPE_CHECKING:  # `stream-guard --help` imports this module: no torch until a replay runs
    from stream_guard.defender import Defender, TokenDetail

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_BATCH = 64
MAX_MESSAGE_BYTES = 1_000_000  # the worker's default (WorkerSettings.max_message_bytes; a test checks)

OutputRecord = PredictionRecord | AuditRecord | DeadLetterRecord


@dataclass(frozen=True)
class RawMessage:
    """One input message as read: its raw value and key, where it came from, the broker's timestamp."""

    value: bytes | None
    key: bytes | None = None
    source: SourceRef | None = None
    timestamp: datetime | None = None  # Kafka record timestamp, None for files
    where: str = ""  # for people: "in.jsonl:12" or "topic[0]@42"


@dataclass(frozen=True)
class Ready:
    """A message that passed the worker's validation, with the time its records will carry."""

    raw: RawMessage
    message: InputMessage
    text: str  # after Defender.clean
    at: datetime


@dataclass(frozen=True)
class Judged:
    """One output: the record to write and, for scored messages, the core verdict behind it."""

    raw: RawMessage
    record: OutputRecord
    verdict: Verdict | None = None


def record_time(raw: RawMessage, message: InputMessage | None, fixed: datetime | None) -> datetime:
    """The deterministic ``scored_at`` of a message (see the module docstring for the order)."""
    if fixed is not None:
        return fixed
    if message is not None and message.timestamp is not None:
        return message.timestamp
    return raw.timestamp or EPOCH


def accept(
    defender: Defender, raw: RawMessage, fixed: datetime | None, max_bytes: int | None = MAX_MESSAGE_BYTES
) -> Ready | DeadLetterRecord:
    """Validate a raw message with the worker's own check; a bad one becomes its dead letter."""
    outcome = validate_message(raw.value, raw.key, raw.source, clean=defender.clean, max_bytes=max_bytes)
    if isinstance(outcome, DeadLetterRecord):
        return outcome.model_copy(update={"received_at": record_time(raw, None, fixed)})
    return Ready(raw, outcome.message, outcome.text, record_time(raw, outcome.message, fixed))


def verdicts_of(defender: Defender, batch: list[Ready], tokens: TokenDetail) -> list[Verdict | Exception]:
    """One ``judge`` call; if it raises, each message alone, so one poison text fails alone (as in the
    worker's ``score_items``). Raises when every message fails: the scorer itself is broken."""
    texts, ids = [r.text for r in batch], [r.message.id for r in batch]
    try:
        return list(defender.judge(texts, ids, tokens=tokens))
    except Exception:
        results: list[Verdict | Exception] = []
        for text, mid in zip(texts, ids, strict=True):
            try:
                results.append(defender.judge([text], [mid], tokens=tokens)[0])
            except Exception as error:
                results.append(error)
        if len(results) > 1 and all(isinstance(r, Exception) for r in results):
            raise
        if len(results) == 1 and isinstance(results[0], Exception):
            raise results[0] from None
        return results


def judge_accepted(defender: Defender, batch: list[Ready], tokens: TokenDetail = "flagged") -> list[Judged]:
    """Judge a batch; map each verdict to its wire record (a scoring failure to an internal dead letter)."""
    if not batch:
        return []
    out = []
    for ready, result in zip(batch, verdicts_of(defender, batch, tokens), strict=True):
        raw = ready.raw
        if isinstance(result, Exception):
            dead = internal_dead_letter(raw.value, raw.key, raw.source, result, ready.message.id)
            out.append(Judged(raw, dead.model_copy(update={"received_at": ready.at})))
            continue
        record = verdict_to_record(
            result, source=raw.source, metadata=ready.message.metadata, scored_at=ready.at
        )
        out.append(Judged(raw, record, result))
    return out


def accepted_batches(
    defender: Defender,
    messages: Iterable[RawMessage],
    *,
    batch_size: int = DEFAULT_BATCH,
    scored_at: datetime | None = None,
    max_bytes: int | None = MAX_MESSAGE_BYTES,
) -> Iterator[list[Ready] | Judged]:
    """Full batches of accepted messages, with each dead letter yielded (as a ``Judged``) in its place.

    A dead letter closes the batch before it, so outputs keep input order.
    """
    batch: list[Ready] = []
    for raw in messages:
        item = accept(defender, raw, scored_at, max_bytes)
        if isinstance(item, Ready):
            batch.append(item)
            if len(batch) >= batch_size:
                yield batch
                batch = []
            continue
        if batch:
            yield batch
            batch = []
        yield Judged(raw, item)
    if batch:
        yield batch


def replay(
    defender: Defender,
    messages: Iterable[RawMessage],
    *,
    batch_size: int = DEFAULT_BATCH,
    scored_at: datetime | None = None,
    tokens: TokenDetail = "flagged",
    max_bytes: int | None = MAX_MESSAGE_BYTES,
) -> Iterator[Judged]:
    """The records for `messages`, in order (prediction, audit or dead letter for each)."""
    batches = accepted_batches(
        defender, messages, batch_size=batch_size, scored_at=scored_at, max_bytes=max_bytes
    )
    for item in batches:
        if isinstance(item, Judged):
            yield item
        else:
            yield from judge_accepted(defender, item, tokens)


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

    def add(self, judged: Judged) -> None:
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
