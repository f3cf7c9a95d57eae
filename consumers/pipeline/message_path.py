"""The message path, written once: envelope → admit → judge → records.

The live worker, replay (files and topic ranges), ``replay --compare``, the demo and the bench all run
messages through one :class:`MessagePipeline`, so the same input gives the same records wherever it is
judged. Only two things differ between callers, and both are arguments:

- **when** a record says it was made (``record_time``): the worker stamps the clock; a replay stamps
  the message's own time so that two replays are byte-identical (:func:`consumers.replay.run.replay_time`);
- **how** batches are formed and where records go: the worker micro-batches what it polls and
  produces to topics (:mod:`consumers.worker.loop`); :meth:`MessagePipeline.run` cuts batches by count
  for offline use.

The three steps:

1. :meth:`~MessagePipeline.admit` (any thread): validate and clean the value
   (:func:`consumers.pipeline.admit.validate_message`); a bad message becomes its dead letter here.
2. :meth:`~MessagePipeline.judge` (the torch thread in a threaded process): one ``Defender.judge`` call
   for the batch's accepted messages, with the one poison-isolation rule of
   :mod:`consumers.pipeline.judge`.
3. :meth:`~MessagePipeline.records` (any thread): one :class:`Output` per admitted message, in input
   order: a ``PredictionRecord`` (clean), an ``AuditRecord`` (flagged, with its evidence) or a
   ``DeadLetterRecord`` (malformed, or its judging raised alone), with its bytes. A record that cannot
   be written (not serializable, over ``max_output_bytes``) is replaced by its message's dead letter
   here, and a record the producer refuses by :meth:`Output.rejected`: the per-message failure rule of
   :mod:`consumers.pipeline.wire`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from consumers.pipeline.admit import Accepted, internal_dead_letter, validate_message
from consumers.pipeline.envelope import Envelope
from consumers.pipeline.judge import JudgedBatch, judge_texts
from consumers.pipeline.records import verdict_to_record
from consumers.pipeline.wire import fits, rejected, to_wire
from schemas import AuditRecord, DeadLetterRecord, InputMessage, PredictionRecord

if TYPE_CHECKING:  # `stream-guard --help` imports the app: no torch until a model runs
    from stream_guard.defender import Defender, TokenDetail
    from stream_guard.encoding import EncodedText
    from stream_guard.verdict import Verdict

__all__ = ["Admitted", "MessagePipeline", "Output", "OutputRecord", "RecordTime", "live_time"]

OutputRecord = PredictionRecord | AuditRecord | DeadLetterRecord
OutputKind = Literal["prediction", "audit", "dead_letter"]

RecordTime = Callable[[Envelope, InputMessage | None], datetime | None]
"""The time a message's records carry (``scored_at``, a dead letter's ``received_at``); None: now.
The message is None when it could not be decoded."""


def live_time(envelope: Envelope, message: InputMessage | None) -> None:
    """The live worker's record time: the clock when the record is made."""
    return None


@dataclass(frozen=True, slots=True)
class Admitted:
    """A message after the admit step: accepted (decoded, cleaned) or already its dead letter.

    at: the time its records carry (``record_time``), None for the clock at record time.
    encoded: the accepted text's tokens when they were needed early (:meth:`MessagePipeline.encode`).
    """

    envelope: Envelope
    outcome: Accepted | DeadLetterRecord
    at: datetime | None = None
    encoded: EncodedText | None = None

    @property
    def accepted(self) -> Accepted | None:
        outcome = self.outcome
        return outcome if isinstance(outcome, Accepted) else None


@dataclass(frozen=True, slots=True)
class Output:
    """One output record for one input message, with the verdict behind it when it was judged.

    value: the record's bytes (None: not encoded yet); key: the Kafka key it goes under (the input's;
    a dead letter's cut to ``MAX_KEY_BYTES``).
    """

    envelope: Envelope
    record: OutputRecord
    verdict: Verdict | None = None
    value: bytes | None = None
    key: bytes | None = None

    def wired(self, max_bytes: int | None) -> Output:
        """This output with its bytes, or its message's dead letter when they cannot be written under
        ``max_bytes`` (the destination's ``message.max.bytes``; None: no limit)."""
        if self.value is not None and fits(self.value, self.key, max_bytes):
            return self  # already encoded, and small enough for this destination too
        wire = to_wire(self.envelope, self.record, max_bytes)
        verdict = self.verdict if wire.record is self.record else None
        return Output(self.envelope, wire.record, verdict, wire.value, wire.key)

    def rejected(self, reason: str, max_bytes: int | None) -> Output:
        """Its message's dead letter (``rejected``, with ``reason``) for an output the producer refused."""
        wire = rejected(self.envelope, self.record, reason, max_bytes=max_bytes)
        return Output(self.envelope, wire.record, None, wire.value, wire.key)

    @property
    def kind(self) -> OutputKind:
        """Which output topic it belongs on: predictions (clean), audit (flagged) or dead letters."""
        record = self.record
        if isinstance(record, DeadLetterRecord):
            return "dead_letter"
        return "audit" if record.flagged else "prediction"


class MessagePipeline:
    """The message path of one defender (see the module docstring).

    Args:
        defender: judges the accepted texts; its threshold is read once per ``judge`` call.
        max_bytes: the largest message value accepted (larger ones are ``oversize`` dead letters).
        record_time: the time records carry; :func:`live_time` (the clock) by default.
        tokens: which verdicts carry per-token attributions (the worker: flagged ones).
        max_output_bytes: the producer's ``message.max.bytes`` (a larger record is dead-lettered);
            None for a destination without a limit (files).
    """

    def __init__(
        self,
        defender: Defender,
        *,
        max_bytes: int | None,
        record_time: RecordTime = live_time,
        tokens: TokenDetail = "flagged",
        max_output_bytes: int | None = None,
    ) -> None:
        self.defender = defender
        self.max_bytes = max_bytes
        self.max_output_bytes = max_output_bytes
        self.record_time = record_time
        self.tokens: TokenDetail = tokens

    def admit(self, envelope: Envelope) -> Admitted:
        """Validate and clean one message; a bad one becomes its dead letter (never an exception)."""
        record_time = self.record_time
        outcome = validate_message(
            envelope.value,
            envelope.key,
            envelope.source,
            clean=self.defender.clean,
            max_bytes=self.max_bytes,
            received_at=None if record_time is live_time else record_time(envelope, None),
        )
        if isinstance(outcome, DeadLetterRecord):
            return Admitted(envelope, outcome)
        at = None if record_time is live_time else record_time(envelope, outcome.message)
        return Admitted(envelope, outcome, at)

    def encode(self, batch: Sequence[Admitted]) -> list[Admitted]:
        """``batch`` with each accepted text tokenized (``Admitted.encoded``: its token count for a
        batch budget), for the judge step to reuse instead of tokenizing again."""
        todo = [i for i, a in enumerate(batch) if a.accepted is not None and a.encoded is None]
        if not todo:
            return list(batch)
        encoded = self.defender.encode([batch[i].accepted.text for i in todo])  # type: ignore[union-attr]
        out = list(batch)
        for i, tokens in zip(todo, encoded, strict=True):
            out[i] = replace(batch[i], encoded=tokens)
        return out

    def judge(self, batch: Sequence[Admitted]) -> JudgedBatch:
        """Judge the accepted messages of ``batch`` in one call (results in their order); texts are
        cleaned by the admit step and, when :meth:`encode` ran, tokenized: neither is done again."""
        accepted = [a for a in batch if a.accepted is not None]
        outcomes = [a.outcome for a in accepted]
        encoded = [a.encoded for a in accepted]
        return judge_texts(
            self.defender,
            [o.text for o in outcomes],  # type: ignore[union-attr]
            [o.message.id for o in outcomes],  # type: ignore[union-attr]
            self.tokens,
            encoded=encoded if all(e is not None for e in encoded) else None,  # type: ignore[arg-type]
        )

    def records(self, batch: Sequence[Admitted], judged: JudgedBatch) -> list[Output]:
        """One output per message of ``batch``, in order, with its bytes; ``judged`` is :meth:`judge` of
        the same batch."""
        results = iter(judged.results)
        outputs = []
        limit = self.max_output_bytes
        for admitted in batch:
            envelope, outcome = admitted.envelope, admitted.outcome
            if isinstance(outcome, DeadLetterRecord):
                outputs.append(Output(envelope, outcome).wired(limit))
                continue
            result = next(results)
            at = admitted.at
            if isinstance(result, Exception):
                dead = internal_dead_letter(
                    envelope.value, envelope.key, envelope.source, result, outcome.message.id, at
                )
                outputs.append(Output(envelope, dead).wired(limit))
                continue
            record = verdict_to_record(
                result, source=envelope.source, metadata=outcome.message.metadata, scored_at=at
            )
            outputs.append(Output(envelope, record, result).wired(limit))
        return outputs

    def batches(self, envelopes: Iterable[Envelope], batch_size: int) -> Iterator[list[Admitted]]:
        """Admitted messages in batches of ``batch_size`` accepted ones (dead letters ride along)."""
        batch: list[Admitted] = []
        accepted = 0
        for envelope in envelopes:
            admitted = self.admit(envelope)
            batch.append(admitted)
            if admitted.accepted is not None:
                accepted += 1
                if accepted >= batch_size:
                    yield batch
                    batch, accepted = [], 0
        if batch:
            yield batch

    def run(self, envelopes: Iterable[Envelope], *, batch_size: int) -> Iterator[Output]:
        """The outputs of ``envelopes``, in input order, judged ``batch_size`` accepted ones at a time."""
        for batch in self.batches(envelopes, batch_size):
            yield from self.records(batch, self.judge(batch))
