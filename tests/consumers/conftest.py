"""Consumer tests exercise the plumbing (batching, topics, replay, rendering) with tiny random models whose
predictions rarely move when a word is deleted. They flag by the threshold alone, the paper's behaviour:
confirmation by prediction change (a DefenderSettings default since docs/lab/research.md) is turned off
here through the environment, which every DefenderSettings, in-process CLI and worker subprocess reads.
Confirmation itself is tested in tests/stream_guard/test_defender_options.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _flag_by_threshold_alone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STREAM_GUARD_CONFIRM", "false")
    yield
