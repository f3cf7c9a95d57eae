"""Two workers in one consumer group split the input partitions and together lose nothing."""

from __future__ import annotations

from collections import Counter

import pytest

from consumers.worker.loop import Worker
from consumers.worker.thread import WorkerThread
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord
from tests.consumers.worker_support import (
    OutputCollector,
    Trickle,
    committed,
    end_offsets,
    mixed_values,
    one_torch_thread,
    tiny_defender,
    wait_for,
    worker_settings,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


@pytest.fixture
def defenders(tmp_path_factory):
    return tiny_defender(tmp_path_factory), tiny_defender(tmp_path_factory)


def test_two_workers_split_partitions_and_lose_nothing(kafka_settings, topic_factory, defenders):
    topics = {
        "input": topic_factory(partitions=4, prefix="in"),
        "predictions": topic_factory(partitions=2, prefix="pred"),
        "audit": topic_factory(partitions=2, prefix="audit"),
        "dead_letter": topic_factory(partitions=1, prefix="dlq"),
    }
    one = worker_settings(kafka_settings, defenders[0], [topics["input"]], topics, threshold=0.0)
    two = one.model_copy()  # same group
    first, second = Worker(one, defender=defenders[0]), Worker(two, defender=defenders[1])
    types = {
        topics["predictions"]: PredictionRecord,
        topics["audit"]: AuditRecord,
        topics["dead_letter"]: DeadLetterRecord,
    }
    values = mixed_values(300)
    with OutputCollector(kafka_settings, types) as outputs, WorkerThread(first) as run_first:
        assert first.wait_assigned(20)
        trickle = Trickle(kafka_settings, topics["input"], values, per_tick=4, tick=0.05).start()
        with WorkerThread(second) as run_second:
            # the cooperative rebalance hands the second member half of the partitions
            wait_for(lambda: len(second.assignment) == 2 and len(first.assignment) == 2, 30, "a 2/2 split")
            assert first.assignment.isdisjoint(second.assignment)
            sent = trickle.join()
            wanted = {(s.partition, s.offset) for s in sent}
            wait_for(lambda: wanted <= outputs.sources(), 30, "every input in the outputs")
            run_second.stop()
            run_first.stop()
        assert second.stats.consumed > 0 and first.stats.consumed > 0
    counts = Counter((o.record.source.partition, o.record.source.offset) for o in outputs.outputs)
    assert set(counts) == wanted
    # revoke finishes and commits the batch in hand, so the hand-over repeats nothing
    assert max(counts.values()) == 1, [c for c, n in counts.items() if n > 1]
    assert committed(kafka_settings, one.group_id, topics["input"], 4) == end_offsets(sent, 4)
