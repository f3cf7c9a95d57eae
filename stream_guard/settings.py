"""Defender settings: pydantic-settings, from env vars `STREAM_GUARD_*`, a file, or keyword arguments."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_guard.anomaly import ScoreNormalization, WordAggregation
from stream_guard.neutralize import Strategy

RoundRule = Literal["anomalous", "unchanged", "anomalous_unchanged"]


class DefenderSettings(BaseSettings):
    """How a Defender scores, flags and neutralizes. Defaults follow the lab's measurements (docs/lab)."""

    model_config = SettingsConfigDict(env_prefix="STREAM_GUARD_", extra="ignore")

    model: str | None = Field(None, description="model directory, or 'packaged' / unset for the backbone")
    device: str = Field("auto", description="auto, cpu or cuda[:N]")
    max_length: int = Field(256, ge=8, le=4096, description="tokens per text; longer texts are truncated")
    max_text_chars: int = Field(20_000, ge=1, description="longer texts are rejected, not truncated")
    batch_size: int = Field(32, ge=1, le=4096)
    max_batch_tokens: int = Field(16_384, ge=64, description="padded tokens per scoring batch")
    call_cost_tokens: int | None = Field(
        None,
        ge=0,
        description="fixed cost of one model call in padded tokens, weighed against padding when texts "
        "are split into batches; unset: 48 on CPU (measured), fewest batches on CUDA",
    )
    threshold: float | None = Field(
        None, allow_inf_nan=False, description="fixed threshold; unset = never flag until calibrated"
    )
    strategy: Strategy = Field("delete", description="how suspicious words are rewritten (paper: noise)")
    words_per_round: int = Field(1, ge=1, le=16, description="words neutralized per round")
    max_rounds: int = Field(1, ge=1, le=16, description="re-score and continue while still anomalous")
    span_ratio: float | None = Field(
        0.01,
        gt=0.0,
        le=1.0,
        description="grow each pick over neighbouring words scoring >= this share of it, so an inserted "
        "phrase is rewritten whole; 'none' turns it off (one word per pick). 0.01 was chosen on validation "
        "splits (docs/lab/choice.md)",
    )
    score_normalization: ScoreNormalization = Field(
        "length", description="none (paper), zscore or length: how word scores are normalised within a text"
    )
    word_aggregation: WordAggregation = Field(
        "token", description="token (paper), word_sum or word_max: merge sub-word pieces before ranking"
    )
    continue_while: RoundRule = Field(
        "anomalous",
        description="another round while the rewritten text is anomalous, its label unchanged, or both",
    )
    confirm: bool = Field(
        True, description="flag only texts whose neutralization changes the prediction (else: clean verdict)"
    )
    rescore_attributions: bool = Field(
        False,
        description="re-score the final rewrite with X-GRAAD (its anomaly score in the record) instead of "
        "a plain forward pass (its label only: the decision needs no more, at about half the cost)",
    )
    probe_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of below-threshold texts whose top words are rewritten and re-classified for "
        "evidence only (the trigger learner's; the verdict does not change): one plain forward each. Off "
        "by default: recurrence learns the lab's triggers as fast without them (docs/lab/stream-choice.md)",
    )
    probe_words: int = Field(
        3,
        ge=1,
        le=16,
        description="a probe (and a flag whose rewrite did not move the prediction) rewrites each of its "
        "top-scored words alone, one plain forward each: a trigger that is not the top word is still seen",
    )
    exclude_stopwords: bool = Field(False, description="stopwords take no part in the scores")
    seed: int = Field(0, description="seed of the per-message neutralization randomness")
    autocast: Literal["none", "bf16", "fp16"] = Field("none", description="mixed precision on CUDA")

    @field_validator("span_ratio", mode="before")
    @classmethod
    def _span_ratio_off(cls, value: object) -> object:
        """``STREAM_GUARD_SPAN_RATIO=none`` (or off, or empty): no spans."""
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    @classmethod
    def paper(cls, **overrides: object) -> DefenderSettings:
        """The paper-faithful X-GRAAD (token scores, no normalization, noise on the top word, one round,
        no confirmation), whatever the defaults are; `overrides` set any other field (model, device...)."""
        values: dict[str, object] = {**PAPER_SETTINGS, **overrides}
        return cls(**values)  # type: ignore[arg-type]


PAPER_SETTINGS: dict[str, object] = {
    "strategy": "noise",
    "words_per_round": 1,
    "max_rounds": 1,
    "span_ratio": None,
    "score_normalization": "none",
    "word_aggregation": "token",
    "continue_while": "anomalous",
    "confirm": False,
    "rescore_attributions": False,
    "exclude_stopwords": False,
}
