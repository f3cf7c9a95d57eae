"""Kafka connection settings and the librdkafka configs built from them.

``KafkaSettings`` reads ``STREAM_GUARD_KAFKA_*`` environment variables (pydantic-settings)::

    STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS=kafka:9092
    STREAM_GUARD_KAFKA_SECURITY_PROTOCOL=SASL_SSL
    STREAM_GUARD_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
    STREAM_GUARD_KAFKA_SASL_USERNAME=guard
    STREAM_GUARD_KAFKA_SASL_PASSWORD=...
    STREAM_GUARD_KAFKA_SSL_CA_LOCATION=/etc/ssl/ca.pem
    STREAM_GUARD_KAFKA_EXTRA='{"client.rack": "eu-1a", "fetch.max.bytes": 1048576}'

``producer_config()``, ``consumer_config(group_id)`` and ``admin_config()`` return librdkafka dicts.
Precedence, lowest first: project defaults < connection settings < ``extra`` < call overrides; an override
of ``None`` removes a key. Overrides use librdkafka's dotted names (``**{"linger.ms": 50}``) or
confluent-kafka's Python keys (``error_cb=...``, ``on_commit=...``).

Defaults: producers are idempotent with ``acks=all`` (no duplicates or reordering on retry) and batch for
5 ms; consumers commit by hand (the worker commits only after its outputs are confirmed), start at the
earliest offset, use cooperative-sticky rebalancing and a 6 s session / 0.5 s heartbeat. Tansu needs
the short session or the first join takes ~23 s; 6000 ms is also Apache Kafka's default
``group.min.session.timeout.ms``, so the same value works on both.

Every config also carries confluent-kafka's ``logger`` and ``error_cb``
(:mod:`consumers.kafka.client_logs`): librdkafka's logs go through structlog, one line per state change
(``STREAM_GUARD_KAFKA_LOG_REPEAT_S``: how often a condition that lasts is logged again), and
authentication failures that last ``STREAM_GUARD_KAFKA_AUTH_TIMEOUT_S`` seconds raise
:class:`~consumers.kafka.client_logs.KafkaAuthError` out of ``consume``/``poll``/``flush``.

Secrets (``sasl_password`` and ``extra`` keys that look secret: ``*password*``, ``*secret*``,
``*token*``, ``*credential*``, ``sasl.oauthbearer.config``, ``sasl.jaas.config``, private keys) never
appear in ``repr``, ``str``, ``model_dump`` or ``model_dump_json``; use :func:`redact_config` before
logging a config dict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr, field_serializer, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.kafka.client_logs import client_callbacks

__all__ = ["DEFAULT_CONSUMER", "DEFAULT_PRODUCER", "KafkaSettings", "is_secret_key", "redact_config"]

DEFAULT_PRODUCER: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
}
DEFAULT_CONSUMER: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "max.poll.interval.ms": 300000,
}

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
_SECRET_KEY = re.compile(
    r"(password|secret|token|credential|oauthbearer\.config|\.key\.pem$|^ssl\.key|jaas|keystore)",
    re.IGNORECASE,
)
_REDACTED = "**********"


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a librdkafka config with secret values replaced by ``**********``."""
    return {key: (_REDACTED if is_secret_key(key) else value) for key, value in config.items()}


def is_secret_key(key: object) -> bool:
    """True for librdkafka properties whose values are secrets (passwords, tokens, OAuth configs, keys)."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


class KafkaSettings(BaseSettings):
    """Where and how to connect to Kafka; ``STREAM_GUARD_KAFKA_<FIELD>`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="STREAM_GUARD_KAFKA_", extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None, description="Comma-separated host:port list (librdkafka bootstrap.servers)."
    )
    client_id: str = Field(default="stream-guard", description="librdkafka client.id.")
    security_protocol: SecurityProtocol | None = None
    sasl_mechanism: str | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or GSSAPI."
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="Any other librdkafka properties, applied to every client (env: a JSON object).",
    )
    auth_timeout_s: float | None = Field(
        default=60.0,
        gt=0,
        description="Authentication failures lasting this long stop the client with KafkaAuthError "
        "(at the next failed attempt: within one reconnect backoff after); empty: retry forever.",
    )
    log_repeat_s: float = Field(
        default=60.0,
        gt=0,
        description="A librdkafka message that keeps coming is logged once, then again every this many "
        "seconds with the count of repeats held back.",
    )

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _upper_protocol(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("extra", mode="before")
    @classmethod
    def _stringify_extra(cls, value: object) -> object:
        """Accept JSON numbers and booleans (``{"linger.ms": 10, "enable.metrics.push": false}``)."""
        if not isinstance(value, Mapping):
            return value
        out: dict[object, object] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                out[key] = "true" if item else "false"
            elif isinstance(item, int | float):
                out[key] = str(item)
            else:
                out[key] = item
        return out

    @field_validator("auth_timeout_s", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_serializer("extra")
    def _redact_extra(self, value: dict[str, str]) -> dict[str, Any]:
        return redact_config(value)

    @model_validator(mode="after")
    def _check_sasl(self) -> KafkaSettings:
        if self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL") and not self.sasl_mechanism:
            raise ValueError(f"security_protocol={self.security_protocol} needs sasl_mechanism")
        if (self.sasl_mechanism or "").upper() in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(f"sasl_mechanism={self.sasl_mechanism} needs sasl_username and sasl_password")
        return self

    # -- librdkafka configs -----------------------------------------------------------------------
    def common_config(self) -> dict[str, Any]:
        """Connection and security settings shared by every client, ``extra`` applied last."""
        if not self.bootstrap_servers:
            raise ValueError(
                "Kafka bootstrap servers are not set: set STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS "
                "(or run `stream-guard broker` for a local one)"
            )
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "client.id": self.client_id}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        config.update(client_callbacks(self.auth_timeout_s, self.log_repeat_s))
        config.update(self.extra)
        return config

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """Config for ``confluent_kafka.Producer``: idempotent, ``acks=all``, ``linger.ms=5``."""
        return _merge(DEFAULT_PRODUCER, self.common_config(), overrides)

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """Config for ``confluent_kafka.Consumer`` in ``group_id``: manual commits, earliest, cooperative."""
        if not group_id:
            raise ValueError("group_id must be a non-empty string")
        return _merge(DEFAULT_CONSUMER, self.common_config(), {"group.id": group_id}, overrides)

    def admin_config(self, **overrides: Any) -> dict[str, Any]:
        """Config for ``confluent_kafka.admin.AdminClient``."""
        return _merge(self.common_config(), overrides)

    # -- no secrets in repr / str -----------------------------------------------------------------
    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (redact_config(value) if name == "extra" else value)


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return {key: value for key, value in merged.items() if value is not None}
