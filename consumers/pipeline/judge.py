"""What the worker carries between poll and produce, and the scoring step it runs on the torch thread.

Kafka-free: :class:`Item` holds a message's coordinates, its raw bytes and the validation outcome;
:func:`score_items` judges the accepted items of a batch with ``Defender.judge(tokens="flagged")`` and
isolates a poison message: when the batch raises, each item is judged alone, and only those that still
raise become ``internal`` dead letters — unless every one of them fails, which points at the scorer
itself (out of memory, a broken model) and is raised so the worker stops without committing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from consumers.pipeline.admit import Accepted, validate_message
from schemas import DeadLetterRecord, SourceRef
from stream_guard.defender import Defender
from stream_guard.verdict import Verdict

__all__ = ["Item", "ScoredBatch", "item_from_message", "score_items", "token_counter"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Item:
    """One input message on its way through the worker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None  # Kafka message timestamp, epoch seconds
    outcome: Accepted | DeadLetterRecord

    @property
    def partition_key(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @property
    def source(self) -> SourceRef:
        return SourceRef.from_kafka(self.topic, self.partition, self.offset, self.key)


def item_from_message(msg: Any, clean: Callable[[object], str], max_bytes: int | None) -> Item:
    """An Item for a confluent-kafka message (not an error event): coordinates, bytes, validation."""
    topic, partition, offset, key, value = msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()
    ts_type, ts_ms = msg.timestamp()
    source = SourceRef.from_kafka(topic, partition, offset, key)
    outcome = validate_message(value, key, source, clean=clean, max_bytes=max_bytes)
    timestamp = ts_ms / 1000.0 if ts_type != 0 else None  # 0: TIMESTAMP_NOT_AVAILABLE
    return Item(topic, partition, offset, key, value, timestamp, outcome)


@dataclass
class ScoredBatch:
    """Verdicts (or the exception of a message that could not be scored) by index into the batch."""

    results: dict[int, Verdict | Exception] = field(default_factory=dict)
    seconds: float = 0.0
    scored: int = 0
    started: float | None = None  # time.perf_counter() when scoring began (None: nothing was scored)


def score_items(defender: Defender, items: Sequence[Item]) -> ScoredBatch:
    """Judge the accepted items of ``items`` in one call; see the module docstring for failures."""
    indices = [i for i, item in enumerate(items) if isinstance(item.outcome, Accepted)]
    if not indices:
        return ScoredBatch()
    accepted = [items[i].outcome for i in indices]
    texts = [a.text for a in accepted]  # type: ignore[union-attr]
    ids = [a.message.id for a in accepted]  # type: ignore[union-attr]
    started = time.perf_counter()
    try:
        verdicts: Sequence[Verdict | Exception] = defender.judge(texts, ids, tokens="flagged")
    except Exception as error:
        log.warning("batch scoring failed; scoring its messages one by one", error=repr(error))
        verdicts = [_judge_one(defender, text, mid) for text, mid in zip(texts, ids, strict=True)]
        if len(verdicts) > 1 and all(isinstance(v, Exception) for v in verdicts):
            raise
    return ScoredBatch(
        results=dict(zip(indices, verdicts, strict=True)),
        seconds=time.perf_counter() - started,
        scored=len(indices),
        started=started,
    )


def _judge_one(defender: Defender, text: str, message_id: str) -> Verdict | Exception:
    try:
        return defender.judge([text], [message_id], tokens="flagged")[0]
    except Exception as error:
        return error


def token_counter(
    defender: Defender, max_items: int | None = None, max_tokens: int | None = None
) -> Callable[[Sequence[str]], list[int]]:
    """Counts the tokens (special tokens included, capped at the model's max length) of texts at once.

    Given the batcher's limits, it skips the tokenizer when the padded-token budget cannot bind
    (none, or `max_items` texts of the model's max length fit in it, as with the worker's defaults):
    every text then counts as the max length, an upper bound that leaves the batches as they would
    be. Counting costs ~60 µs of CPU per short text, more than the rest of the consume loop.
    """
    tokenizer = defender.classifier.tokenizer
    limit = defender.classifier.max_length
    if max_items is not None and (max_tokens is None or max_items * limit <= max_tokens):
        return lambda texts: [limit] * len(texts)

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=True,
            max_length=limit,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    return count
