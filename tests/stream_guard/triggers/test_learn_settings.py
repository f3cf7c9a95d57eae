"""The learner's rule from STREAM_GUARD_LEARN_* (one variable for replay, the worker and the service)."""

from __future__ import annotations

import pytest

from stream_guard.triggers.learn_settings import learn_rule
from stream_guard.triggers.rule import LearnRule


def test_unset_variables_give_the_lab_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FIRST_SIGHT_PER_MESSAGE", "MIN_INSERTION_RATE"):
        monkeypatch.delenv(f"STREAM_GUARD_LEARN_{name}", raising=False)
    assert learn_rule() == LearnRule()


def test_a_variable_changes_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_GUARD_LEARN_FIRST_SIGHT_PER_MESSAGE", "0")
    monkeypatch.setenv("STREAM_GUARD_LEARN_MIN_INSERTION_RATE", "0.95")
    rule = learn_rule()
    assert rule.first_sight_per_message == 0.0 and rule.min_insertion_rate == 0.95
    assert rule.min_flips == LearnRule().min_flips


def test_a_bad_value_is_a_one_line_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_GUARD_LEARN_FIRST_SIGHT_QUANTILE", "1.5")
    with pytest.raises(ValueError, match="STREAM_GUARD_LEARN_FIRST_SIGHT_QUANTILE"):
        learn_rule()
