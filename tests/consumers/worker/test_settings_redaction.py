"""Issue 15: librdkafka overrides of the worker (they may carry ``sasl.password`` or an OAuth config) are
redacted in ``repr``, ``str`` and dumps, like the Kafka settings' own secrets; the values stay usable."""

from __future__ import annotations

from consumers.kafka.settings import KafkaSettings
from consumers.worker.settings import WorkerSettings


def test_override_secrets_are_redacted_in_repr_and_dumps() -> None:
    settings = WorkerSettings(
        kafka=KafkaSettings(
            bootstrap_servers="b:1", extra={"sasl.oauthbearer.config": "clientSecret=k-s3cr3t"}
        ),
        consumer_overrides={"sasl.password": "c-s3cr3t", "session.timeout.ms": 2000},
        producer_overrides={"sasl.oauthbearer.config": "clientSecret=p-s3cr3t", "linger.ms": 7},
    )
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert "s3cr3t" not in text, text
        assert "session.timeout.ms" in text and "linger.ms" in text
    assert settings.consumer_overrides["sasl.password"] == "c-s3cr3t"  # what the clients get
    config = settings.kafka.consumer_config(settings.group_id, **settings.consumer_overrides)
    assert config["sasl.password"] == "c-s3cr3t"
