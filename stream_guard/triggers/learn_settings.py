"""The learner's rule from the environment (``STREAM_GUARD_LEARN_*``), for every process that learns.

``replay --learn-triggers``, ``run --learn-triggers`` and ``triggers learn`` all build their
:class:`~stream_guard.triggers.rule.LearnRule` here, so one variable changes all three; unset, each
field is the lab's default (``LearnRule()``). A bad value is a clear error at start, not a silent default.

Between the two sit the values measured on the model: ``calibrate --scan-bar`` measures the insertion
bars (:mod:`stream_guard.triggers.bar_scan`) and writes them into the threshold update; the processes
pass them here as ``measured``, and they apply to every field the environment does not set.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_guard.triggers.rule import LearnRule

__all__ = ["LearnSettings", "learn_rule"]

_D = LearnRule()


class LearnSettings(BaseSettings):
    """What decides a promotion (see :mod:`stream_guard.triggers.learner`)."""

    model_config = SettingsConfigDict(env_prefix="STREAM_GUARD_LEARN_", extra="ignore")

    min_flips: int = Field(_D.min_flips, ge=1, description="confirmed flips before evidence nominates a word")
    max_clean_rate: float = Field(_D.max_clean_rate, ge=0.0, le=1.0, description="most share of clean texts")
    min_insertion_rate: float = Field(
        _D.min_insertion_rate, gt=0.0, le=1.0, description="share of other-label texts it must turn"
    )
    min_insertion_rate_unseen: float = Field(
        _D.min_insertion_rate_unseen,
        gt=0.0,
        le=1.0,
        description="share a single word in no clean text must turn (at most min_insertion_rate)",
    )
    min_insertion_texts: int = Field(_D.min_insertion_texts, ge=1, description="fewest texts a test may use")
    max_triggers: int = Field(_D.max_triggers, ge=0, description="most triggers ever learned")
    tests_per_message: float = Field(
        _D.tests_per_message, ge=0.0, description="recurrence tests a message, on average"
    )
    first_sight_quantile: float = Field(
        _D.first_sight_quantile, ge=0.0, le=1.0, description="anomaly rank in the recent traffic to nominate"
    )
    first_sight_texts: int = Field(_D.first_sight_texts, ge=1, description="texts of a first-sight screen")
    first_sight_per_message: float = Field(
        _D.first_sight_per_message, ge=0.0, description="first-sight screens a message, on average (0: off)"
    )
    first_sight_warmup: int = Field(
        _D.first_sight_warmup, ge=1, description="messages scored before first sight nominates"
    )

    def rule(self) -> LearnRule:
        return LearnRule(**self.model_dump())


def learn_rule(measured: Mapping[str, float] | None = None) -> LearnRule:
    """The rule from ``STREAM_GUARD_LEARN_*``, with ``measured`` values (the calibration's bars) for the
    fields the environment leaves unset; ValueError (one line, naming the variable) on a bad value."""
    try:
        settings = LearnSettings()
        measured = {k: v for k, v in (measured or {}).items() if k in LearnSettings.model_fields}
        unset = {k: v for k, v in measured.items() if k not in settings.model_fields_set}
        return settings.model_copy(update=unset).rule() if unset else settings.rule()
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        name = (
            f"STREAM_GUARD_LEARN_{str(first['loc'][0]).upper()}" if first["loc"] else "STREAM_GUARD_LEARN_*"
        )
        raise ValueError(f"{name}: {first['msg']}") from None
