"""consumers.worker.flow_control: pause at `high` waiting messages behind a busy scorer, resume at half."""

from __future__ import annotations

from consumers.worker.flow_control import FlowControl


class FakeConsumer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.owned = ["t/0", "t/1"]

    def assignment(self) -> list[str]:
        return list(self.owned)

    def pause(self, partitions: list[str]) -> None:
        self.calls.append(("pause", partitions))

    def resume(self, partitions: list[str]) -> None:
        self.calls.append(("resume", partitions))

    def incremental_assign(self, partitions: list[str]) -> None:
        self.calls.append(("assign", partitions))


def test_pauses_behind_a_busy_scorer_and_resumes_at_half() -> None:
    gauge: list[int] = []
    flow, consumer = FlowControl(high=64, set_gauge=gauge.append), FakeConsumer()
    flow.update(consumer, waiting=64, busy=False)  # idle scorer: never pause
    flow.update(consumer, waiting=63, busy=True)
    assert not flow.paused and consumer.calls == []
    flow.update(consumer, waiting=64, busy=True)
    assert flow.paused and consumer.calls == [("pause", ["t/0", "t/1"])] and gauge == [1]
    flow.update(consumer, waiting=33, busy=True)  # not yet half
    assert flow.paused
    flow.on_assign(consumer, ["t/2"])  # a new partition waits too
    assert consumer.calls[-2:] == [("assign", ["t/2"]), ("pause", ["t/2"])]
    flow.update(consumer, waiting=32, busy=True)
    assert not flow.paused and consumer.calls[-1] == ("resume", ["t/0", "t/1"]) and gauge == [1, 0]
    flow.on_assign(consumer, ["t/3"])  # not paused: the callback leaves assignment to the client
    assert consumer.calls[-1][0] == "resume"


def test_zero_buffer_pauses_per_batch_and_resumes_when_the_scorer_is_idle() -> None:
    flow, consumer = FlowControl(high=0, set_gauge=lambda value: None), FakeConsumer()
    flow.update(consumer, waiting=0, busy=True)
    assert flow.paused
    flow.update(consumer, waiting=0, busy=True)
    assert flow.paused
    flow.update(consumer, waiting=5, busy=False)
    assert not flow.paused
