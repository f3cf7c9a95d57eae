"""Settings of the scoring worker: pydantic-settings, from ``STREAM_GUARD_*`` environment variables.

::

    STREAM_GUARD_GROUP_ID=stream-guard
    STREAM_GUARD_INPUT_TOPICS=texts,more-texts          # comma-separated (or a JSON list)
    STREAM_GUARD_PREDICTIONS_TOPIC=predictions
    STREAM_GUARD_AUDIT_TOPIC=audit
    STREAM_GUARD_DEAD_LETTER_TOPIC=dead-letter
    STREAM_GUARD_THRESHOLDS_TOPIC=thresholds            # empty: no hot reload
    STREAM_GUARD_THRESHOLD=4.2                          # start value, until the thresholds topic has one
    STREAM_GUARD_TRIGGERS_TOPIC=triggers                # known-trigger updates; empty: no hot reload
    STREAM_GUARD_TRIGGERS_FILE=triggers.json            # start set, until the triggers topic has one
    STREAM_GUARD_LEARN_TRIGGERS=true STREAM_GUARD_CLEAN_TEXTS=movies  # learn in the worker (learning.py)
    STREAM_GUARD_MAX_BATCH_SIZE=32  STREAM_GUARD_MAX_BATCH_TOKENS=16384  STREAM_GUARD_MAX_WAIT_MS=50
    STREAM_GUARD_MAX_MESSAGE_BYTES=1000000  STREAM_GUARD_METRICS_PORT=9108
    STREAM_GUARD_CONSUMER_OVERRIDES='{"session.timeout.ms": 2000}'
    STREAM_GUARD_TORCH_THREADS=1                        # see below

plus the Kafka connection (``STREAM_GUARD_KAFKA_*``, :class:`consumers.kafka.settings.KafkaSettings`),
the update channel (``STREAM_GUARD_UPDATE_KEY`` / ``_KEY_FILE``, ``STREAM_GUARD_UPDATE_MAX_SKEW_S``,
``STREAM_GUARD_THRESHOLD_MIN`` / ``_MAX``...,
:class:`consumers.pipeline.update_settings.UpdateChannelSettings`: which threshold and trigger updates
are applied) and the defender (``STREAM_GUARD_MODEL``, ``STREAM_GUARD_DEVICE``...,
:class:`stream_guard.settings.DefenderSettings`).
``STREAM_GUARD_THRESHOLD`` and ``STREAM_GUARD_MAX_BATCH_TOKENS`` are read by both this model and
DefenderSettings with the same meaning; the worker's value wins.

``torch_threads``: on a busy machine torch's default (one intra-op thread per core) can be many times
slower than one thread (measured: 1.6 s vs 0.04 s per batch of 8 on a loaded 2-core box); set it to the
cores you reserve for the worker. Applied by `stream-guard run` only (in-process users own torch).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import Field, field_serializer, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from consumers.kafka.settings import KafkaSettings, redact_config
from consumers.kafka.topics import validate_topic_name
from consumers.pipeline.update_settings import UpdateChannelSettings, update_channel_from_env
from stream_guard.settings import DefenderSettings

__all__ = ["WorkerSettings"]

_OVERRIDES = ("consumer_overrides", "producer_overrides")


class WorkerSettings(BaseSettings):
    """Everything `stream-guard run` needs; build with keywords or let it read the environment."""

    model_config = SettingsConfigDict(env_prefix="STREAM_GUARD_", extra="ignore")

    group_id: str = Field("stream-guard", min_length=1, description="consumer group of the workers")
    input_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["texts"], min_length=1, description="topics of InputMessage records"
    )
    predictions_topic: str = Field("predictions", description="clean (unflagged) verdicts")
    audit_topic: str = Field("audit", description="flagged verdicts with their evidence")
    dead_letter_topic: str = Field("dead-letter", description="malformed input with the reason")
    thresholds_topic: str | None = Field("thresholds", description="ThresholdUpdate records; empty = off")
    threshold: float | None = Field(
        None, allow_inf_nan=False, description="start threshold (until the thresholds topic has one)"
    )
    triggers_topic: str | None = Field("triggers", description="TriggerUpdate records; empty = off")
    triggers_file: Path | None = Field(
        None,
        description="a TriggerUpdate JSON: the start known-trigger set (until the triggers topic has one)",
    )
    learn_triggers: bool = Field(
        False,
        description="learn triggers from this worker's own traffic (needs clean_texts); each promotion is "
        "in force at once and published to the triggers topic",
    )
    clean_texts: str | None = Field(
        None, description="with learn_triggers: the clean calibration texts, a lab dataset or a file"
    )
    max_batch_size: int = Field(32, ge=1, le=4096, description="messages per scoring batch")
    max_batch_tokens: int | None = Field(
        16_384, ge=64, description="padded tokens (longest × count) per scoring batch"
    )
    max_wait_ms: float = Field(50.0, ge=0, description="longest wait for a batch, from its first message")
    buffer_batches: int = Field(
        4, ge=0, le=64, description="pause input when this many batches wait for the scorer (0: always)"
    )
    max_message_bytes: int = Field(1_000_000, ge=1, description="larger input values are dead-lettered")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus /metrics; 0/unset: off")
    metrics_host: str = Field("0.0.0.0", description="interface of the metrics server")
    flush_timeout_s: float = Field(30.0, gt=0, description="longest wait for outputs to be acknowledged")
    threshold_startup_wait_s: float = Field(
        5.0, ge=0, description="longest wait at start to read the thresholds and triggers topics to their end"
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="torch intra-op threads of `stream-guard run` (unset: torch's default)",
    )
    transactional: bool = Field(
        False, description="exactly-once: outputs and input offsets commit in one Kafka transaction"
    )
    consumer_overrides: dict[str, Any] = Field(
        default_factory=dict, description="librdkafka properties for the input consumer only (JSON)"
    )
    producer_overrides: dict[str, Any] = Field(
        default_factory=dict, description="librdkafka properties for the output producer only (JSON)"
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # from the environment; a bad setting raises UpdateChannelError (one line, never the key)
    update_channel: UpdateChannelSettings = Field(default_factory=update_channel_from_env)
    defender: DefenderSettings = Field(default_factory=DefenderSettings)

    @field_validator("input_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return orjson.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("input_topics")
    @classmethod
    def _valid_inputs(cls, value: list[str]) -> list[str]:
        for name in value:
            validate_topic_name(name)
        if len(set(value)) != len(value):
            raise ValueError(f"input topics repeat: {value}")
        return value

    @field_validator("predictions_topic", "audit_topic", "dead_letter_topic")
    @classmethod
    def _valid_output(cls, value: str) -> str:
        return validate_topic_name(value)

    @field_validator("thresholds_topic", "triggers_topic", mode="before")
    @classmethod
    def _optional_topic(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return validate_topic_name(str(value).strip())

    @field_validator("consumer_overrides", "producer_overrides", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        return orjson.loads(value) if isinstance(value, str | bytes) else value

    @field_serializer("consumer_overrides", "producer_overrides")
    def _redact_overrides(self, value: dict[str, Any]) -> dict[str, Any]:
        return redact_config(value)  # an override may carry sasl.password: never in dumps or repr

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_config(value) if name in _OVERRIDES else value

    @model_validator(mode="after")
    def _learning_needs_clean_texts(self) -> WorkerSettings:
        if self.learn_triggers and not self.clean_texts:
            raise ValueError("learn_triggers needs clean_texts (the clean calibration texts)")
        return self

    @field_validator("triggers_file", mode="before")
    @classmethod
    def _optional_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def output_topics(self) -> list[str]:
        return [self.predictions_topic, self.audit_topic, self.dead_letter_topic]

    @property
    def update_topics(self) -> list[str]:
        """The thresholds and triggers topics that are followed (none when both are off)."""
        return [t for t in (self.thresholds_topic, self.triggers_topic) if t is not None]

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0
