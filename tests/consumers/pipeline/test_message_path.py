"""consumers.pipeline.message_path: admit → judge → records on a real tiny model, Kafka-free."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from consumers.pipeline.envelope import Envelope
from consumers.pipeline.message_path import MessagePipeline
from consumers.replay.run import EPOCH, replay_time
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord, SourceRef
from tests.consumers.worker_support import POISON, poison_defender

WHEN = datetime(2024, 5, 1, 10, tzinfo=UTC)


def _value(mid: str, text: str, **extra: object) -> bytes:
    return orjson.dumps({"id": mid, "text": text, **extra})


def _envelopes() -> list[Envelope]:
    source = SourceRef(topic="in", partition=0, offset=3, key="k")
    return [
        Envelope(_value("a", "a fine film about people"), b"k", source, WHEN, "in[0]@3"),
        Envelope(b"not json"),
        Envelope(_value("p", f"a film with a {POISON} inside")),
        Envelope(_value("b", "another fine film", timestamp="2023-01-01T00:00:00Z")),
    ]


def test_outputs_come_in_input_order_with_the_poison_message_dead_lettered(tmp_path_factory) -> None:
    defender = poison_defender(tmp_path_factory)
    defender.set_threshold(None)
    pipeline = MessagePipeline(defender, max_bytes=10_000, record_time=replay_time())
    batch = [pipeline.admit(e) for e in _envelopes()]
    assert [a.accepted is not None for a in batch] == [True, False, True, True]
    judged = pipeline.judge(batch)
    assert judged.judged == 3 and isinstance(judged.results[1], RuntimeError)
    outputs = pipeline.records(batch, judged)
    assert [o.kind for o in outputs] == ["prediction", "dead_letter", "dead_letter", "prediction"]
    first, bad, poisoned, last = (o.record for o in outputs)
    assert isinstance(first, PredictionRecord) and not isinstance(first, AuditRecord)
    assert first.source == SourceRef(topic="in", partition=0, offset=3, key="k") and first.scored_at == WHEN
    assert isinstance(bad, DeadLetterRecord) and bad.error_type == "not_json" and bad.received_at == EPOCH
    assert isinstance(poisoned, DeadLetterRecord) and poisoned.error_type == "internal"
    assert poisoned.id == "p" and POISON in poisoned.reason and poisoned.received_at == EPOCH
    assert last.scored_at == datetime(2023, 1, 1, tzinfo=UTC)  # the message's own timestamp wins
    assert outputs[0].verdict is not None and outputs[1].verdict is None and outputs[2].verdict is None


def test_run_batches_by_accepted_count_and_gives_the_same_records(tmp_path_factory) -> None:
    defender = poison_defender(tmp_path_factory)
    pipeline = MessagePipeline(defender, max_bytes=10_000, record_time=replay_time(WHEN))
    batches = list(pipeline.batches(_envelopes(), batch_size=2))
    assert [len(b) for b in batches] == [3, 1]  # the dead letter rides along with the first two accepted
    one = [o.record.model_dump_json() for o in pipeline.run(_envelopes(), batch_size=1)]
    many = [o.record.model_dump_json() for o in pipeline.run(_envelopes(), batch_size=64)]
    assert one == many and len(one) == 4


def test_the_live_record_time_is_the_clock(tmp_path_factory) -> None:
    pipeline = MessagePipeline(poison_defender(tmp_path_factory), max_bytes=10_000)
    before = datetime.now(UTC)
    outputs = list(pipeline.run(_envelopes(), batch_size=8))
    assert outputs[0].record.scored_at >= before  # type: ignore[union-attr]
    assert outputs[1].record.received_at >= before  # type: ignore[union-attr]


def test_texts_encoded_ahead_give_the_same_records_and_are_not_tokenized_again(tmp_path_factory) -> None:
    """The worker tokenizes messages as they arrive when its token budget can bind: the judge step
    reuses those tokens, and the records are the same."""
    defender = poison_defender(tmp_path_factory)
    pipeline = MessagePipeline(defender, max_bytes=10_000, record_time=replay_time(WHEN))
    batch = [pipeline.admit(e) for e in _envelopes()]
    plain = [o.record.model_dump_json() for o in pipeline.records(batch, pipeline.judge(batch))]
    encoded = pipeline.encode(batch)
    assert [a.encoded is not None for a in encoded] == [True, False, True, True]
    calls = []
    original = defender.runner.encode
    defender.runner.encode = lambda texts: calls.append(len(texts)) or original(texts)  # type: ignore[method-assign]
    ahead = [o.record.model_dump_json() for o in pipeline.records(encoded, pipeline.judge(encoded))]
    assert ahead == plain
    assert calls == []  # neither the batch nor the texts judged alone after it raised
