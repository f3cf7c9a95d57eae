"""KafkaSettings: environment parsing, librdkafka configs and secret hygiene (no broker needed)."""

from __future__ import annotations

import os

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError
from pydantic_settings import SettingsError

from consumers.kafka.client_logs import KafkaErrorCallback, KafkaLogger
from consumers.kafka.settings import KafkaSettings, redact_config

ENV = "STREAM_GUARD_KAFKA_"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV):
            monkeypatch.delenv(name)


def _sasl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV + "BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv(ENV + "SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv(ENV + "SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv(ENV + "SASL_USERNAME", "guard")
    monkeypatch.setenv(ENV + "SASL_PASSWORD", "hunter2-secret")
    monkeypatch.setenv(ENV + "SSL_CA_LOCATION", "/etc/ssl/ca.pem")
    monkeypatch.setenv(
        ENV + "EXTRA",
        '{"client.rack": "eu-1a", "fetch.max.bytes": 1048576, "enable.metrics.push": false,'
        ' "ssl.key.password": "keypass-secret"}',
    )


def test_settings_from_env_including_extra_json(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_env(monkeypatch)
    settings = KafkaSettings()
    assert settings.bootstrap_servers == "k1:9093,k2:9093"
    assert settings.security_protocol == "SASL_SSL"
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == "hunter2-secret"
    assert settings.extra == {
        "client.rack": "eu-1a",
        "fetch.max.bytes": "1048576",
        "enable.metrics.push": "false",
        "ssl.key.password": "keypass-secret",
    }
    config = settings.admin_config()
    assert config["bootstrap.servers"] == "k1:9093,k2:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "guard"
    assert config["sasl.password"] == "hunter2-secret"  # librdkafka needs the real value
    assert config["ssl.ca.location"] == "/etc/ssl/ca.pem"
    assert config["client.rack"] == "eu-1a"
    assert config["fetch.max.bytes"] == "1048576"


def test_secrets_do_not_leak_into_repr_str_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_env(monkeypatch)
    settings = KafkaSettings()
    for rendered in (repr(settings), str(settings), settings.model_dump_json(), f"{settings!r}"):
        assert "hunter2-secret" not in rendered
        assert "keypass-secret" not in rendered
        assert "guard" in rendered  # the username is not a secret
    redacted = redact_config(settings.producer_config())
    assert "hunter2-secret" not in repr(redacted) and "keypass-secret" not in repr(redacted)
    assert redacted["sasl.username"] == "guard"


def test_invalid_extra_json_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV + "EXTRA", "{not json")
    with pytest.raises(SettingsError):
        KafkaSettings()


def test_project_defaults() -> None:
    settings = KafkaSettings(bootstrap_servers="localhost:9092")
    producer = settings.producer_config()
    assert producer["acks"] == "all"
    assert producer["enable.idempotence"] is True
    assert producer["linger.ms"] == 5
    consumer = settings.consumer_config("workers")
    assert consumer["group.id"] == "workers"
    assert consumer["enable.auto.commit"] is False
    assert consumer["auto.offset.reset"] == "earliest"
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    assert consumer["session.timeout.ms"] == 6000
    assert consumer["heartbeat.interval.ms"] == 500
    assert consumer["max.poll.interval.ms"] == 300000
    admin = settings.admin_config()
    # every client logs through structlog and watches authentication (consumers.kafka.client_logs)
    assert isinstance(admin.pop("logger"), KafkaLogger)
    assert isinstance(admin.pop("error_cb"), KafkaErrorCallback)
    assert admin == {"bootstrap.servers": "localhost:9092", "client.id": "stream-guard"}
    assert "acks" not in consumer and "group.id" not in producer


def test_precedence_defaults_then_extra_then_overrides() -> None:
    settings = KafkaSettings(
        bootstrap_servers="b:1", extra={"linger.ms": "20", "session.timeout.ms": "10000"}
    )
    assert settings.producer_config()["linger.ms"] == "20"
    assert settings.producer_config(**{"linger.ms": 50})["linger.ms"] == 50
    consumer = settings.consumer_config(
        "g", **{"session.timeout.ms": 7000, "partition.assignment.strategy": None}
    )
    assert consumer["session.timeout.ms"] == 7000
    assert "partition.assignment.strategy" not in consumer  # None removes a key
    assert settings.consumer_config("g", **{"group.id": "other"})["group.id"] == "other"


def test_missing_bootstrap_or_group_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS"):
        KafkaSettings().producer_config()
    with pytest.raises(ValueError, match="group_id"):
        KafkaSettings(bootstrap_servers="b:1").consumer_config("")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            "password",
        ),
        ({"security_protocol": "TLS"}, "security_protocol"),
    ],
)
def test_inconsistent_security_settings_are_rejected(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(bootstrap_servers="b:1", **fields)  # type: ignore[arg-type]


def test_librdkafka_accepts_the_configs() -> None:
    """Property names and values are checked when a client is built, before any connection."""
    quiet = {"log_level": 0}  # nothing listens on port 9; keep the connection errors out of the output
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:9", extra={"client.rack": "r1"})
    Producer(settings.producer_config(**quiet)).flush(0)
    Consumer(settings.consumer_config("g", **quiet)).close()
    AdminClient(settings.admin_config(**quiet))
    with pytest.raises(KafkaException, match=r"no\.such\.property"):
        Producer(settings.producer_config(**{"no.such.property": "1"}, **quiet))


def test_oauth_config_and_secret_looking_extras_are_redacted_everywhere() -> None:
    """Issue 15: ``sasl.oauthbearer.config`` (it carries client secrets) was shown in repr and dumps."""
    secrets = {
        "sasl.oauthbearer.config": "clientId=guard clientSecret=oauth-s3cr3t",
        "sasl.oauthbearer.client.secret": "client-s3cr3t",
        "sasl.password": "override-s3cr3t",
        "ssl.keystore.password": "keystore-s3cr3t",
        "some.token": "token-s3cr3t",
    }
    settings = KafkaSettings(bootstrap_servers="b:1", extra={**secrets, "client.rack": "r1"})
    rendered = (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.model_dump()),
        repr(redact_config(settings.consumer_config("g"))),
    )
    for text in rendered:
        assert "s3cr3t" not in text, text
        assert "r1" in text  # what is not secret stays readable
    assert settings.extra["sasl.oauthbearer.config"].endswith("oauth-s3cr3t")  # the value itself is kept
    assert settings.admin_config()["sasl.password"] == "override-s3cr3t"  # and reaches librdkafka


def test_auth_timeout_and_log_repeat_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV + "AUTH_TIMEOUT_S", "7.5")
    monkeypatch.setenv(ENV + "LOG_REPEAT_S", "30")
    settings = KafkaSettings(bootstrap_servers="b:1")
    assert settings.auth_timeout_s == 7.5 and settings.log_repeat_s == 30
    callback = settings.consumer_config("g")["error_cb"]
    assert callback.auth_timeout_s == 7.5
    monkeypatch.setenv(ENV + "AUTH_TIMEOUT_S", "")
    assert KafkaSettings().auth_timeout_s is None  # empty: retry forever
    with pytest.raises(ValidationError):
        KafkaSettings(auth_timeout_s=0)
