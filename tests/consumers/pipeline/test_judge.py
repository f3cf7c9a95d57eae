"""consumers.pipeline.judge: the one poison-isolation rule the worker and replay share."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from consumers.pipeline.judge import judge_texts


class FakeDefender:
    """judge() raises for texts containing 'poison' (or for everything when `broken`)."""

    def __init__(self, broken: bool = False) -> None:
        self.broken, self.calls = broken, 0

    def judge(self, texts, ids, tokens, cleaned, encoded):
        assert cleaned, "the message path hands judge cleaned texts"
        self.calls += 1
        if self.broken or any("poison" in t for t in texts):
            raise RuntimeError("boom")
        return [SimpleNamespace(id=i) for i in ids]


def test_a_poison_text_is_isolated_and_the_rest_judged() -> None:
    defender = FakeDefender()
    judged = judge_texts(defender, ["fine", "poison pill", "also fine"], ["a", "b", "c"])  # type: ignore[arg-type]
    assert judged.judged == 3 and defender.calls == 1 + 3  # the batch, then each text alone
    assert isinstance(judged.results[1], RuntimeError)
    assert [r.id for r in (judged.results[0], judged.results[2])] == ["a", "c"]  # type: ignore[union-attr]
    assert judged.started is not None and judged.seconds >= 0


def test_a_broken_scorer_raises_instead_of_failing_every_message() -> None:
    with pytest.raises(RuntimeError):
        judge_texts(FakeDefender(broken=True), ["a", "b"], ["a", "b"])  # type: ignore[arg-type]


def test_a_batch_of_one_that_fails_is_that_messages_failure() -> None:
    """Before the message path was shared, the worker dead-lettered this message and replay aborted."""
    judged = judge_texts(FakeDefender(), ["poison"], ["p"])  # type: ignore[arg-type]
    assert len(judged.results) == 1 and isinstance(judged.results[0], RuntimeError)


def test_nothing_to_judge() -> None:
    judged = judge_texts(FakeDefender(), [], [])  # type: ignore[arg-type]
    assert judged.results == [] and judged.started is None
