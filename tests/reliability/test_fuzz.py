"""A few thousand fuzzed messages (consumers/devtools/fuzz.py) through the worker on the real broker:
every one comes out exactly once — a prediction, an audit record or a dead letter with its reason —
and the worker never stops. ``scripts/fuzz_worker.py`` runs the long version (100,000)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from consumers.devtools.fuzz import fuzz_messages
from consumers.worker.loop import Worker
from consumers.worker.thread import WorkerThread
from schemas import DeadLetterRecord
from tests.consumers.worker_support import one_torch_thread, tiny_defender, worker_settings
from tests.reliability.harness import Collector, Producer, Topics, account, wait_until

N_FUZZED = 3_000
N_HEAVY = 8  # values over 1 MB and ~450 KB keys
SEED = 15

# what a kind must become; kinds not listed may be scored or dead-lettered (e.g. a text of control
# characters only is `empty_text`, one with words in it is scored)
EXPECTED = {
    "valid": "scored",
    "rtl_text": "scored",
    "zalgo_text": "scored",
    "binary_key": "scored",
    "random_bytes": "dead",
    "invalid_utf8": "invalid_utf8",
    "not_json": "dead",
    "not_object": "not_object",
    "missing_fields": "validation",
    "blank_text": "dead",
    "deep_metadata": "unencodable",
    "too_deep_json": "not_json",
    "huge_value": "oversize",
    "null_value": "not_json",
    "empty_value": "not_json",
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    yield from one_torch_thread()


def test_fuzzed_messages_each_come_out_exactly_once(
    kafka_settings: Any, kafka_is_tansu: bool, tmp_path_factory: Any
) -> None:
    corpus = list(fuzz_messages(N_FUZZED, SEED, nulls=not kafka_is_tansu, heavy=False))
    corpus += fuzz_messages(N_HEAVY, SEED, kinds={"huge_value": 1, "huge_key": 1})
    topics = Topics.create(kafka_settings, "fuzz")
    producer = Producer(kafka_settings, topics.input)
    producer.send(corpus)
    assert len(producer.sent) == len(corpus)

    defender = tiny_defender(tmp_path_factory)
    outputs = {"predictions": topics.predictions, "audit": topics.audit, "dead_letter": topics.dead_letter}
    settings = worker_settings(
        kafka_settings,
        defender,
        [topics.input],
        outputs,
        threshold=0.5,
        thresholds_topic=None,
        triggers_topic=None,
        max_message_bytes=1_000_000,  # the worker's defaults
        max_batch_size=32,
    )
    worker = Worker(settings, defender=defender)
    started = time.monotonic()
    with Collector(kafka_settings, topics) as collector:
        run = WorkerThread(worker).start()
        try:
            wait_until(lambda: len(collector.outputs) >= len(corpus) or run.join(0), 120)
            time.sleep(1.0)  # a late duplicate would show now
        finally:
            run.stop(reraise=False)
    out = collector.outputs
    seconds = time.monotonic() - started
    assert run.error is None, f"the worker stopped: {run.error!r}"

    books = account(producer.sent, out)
    print(f"fuzz: {books.line()} in {seconds:.1f} s; {dict(books.reasons)}")
    assert books.lost == [] and books.duplicated == {}, books.line()
    assert books.outputs == len(corpus)

    by_source = {(o.record.source.partition, o.record.source.offset): o for o in out}
    seen: Counter[tuple[str, str]] = Counter()
    for coords, kind in producer.sent.items():
        output = by_source[coords]
        record = output.record
        if isinstance(record, DeadLetterRecord):
            assert record.reason.strip() and record.error_type
            assert output.size < 1_000_000 and len(output.key or b"") <= 1024
            outcome = record.error_type
        else:
            outcome = "scored"
        seen[(kind, outcome)] += 1
        wanted = EXPECTED.get(kind)
        if wanted == "dead":
            assert outcome != "scored", (kind, record)
        elif wanted is not None:
            assert outcome == wanted, (kind, outcome, record)
    print("fuzz outcomes:", dict(sorted(seen.items())))
    assert {kind for kind, _ in seen} >= set(EXPECTED) - (
        {"null_value", "empty_value"} if kafka_is_tansu else set()
    )
