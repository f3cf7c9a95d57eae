"""The metrics port's /healthz and /readyz (consumers/worker/health.py) and the health gauges
(consumers/worker/metrics.py): readiness follows the worker's gauges; the ages count from created_at."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from consumers.devtools.broker import free_port
from consumers.worker.metrics import WorkerMetrics, readiness, serve_metrics


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def served() -> tuple[WorkerMetrics, str]:
    metrics = WorkerMetrics()
    port = free_port()
    server = serve_metrics(port, metrics.registry, host="127.0.0.1")
    yield metrics, f"http://127.0.0.1:{port}"
    server.shutdown()


def test_readyz_waits_for_partitions_model_and_threshold(served):
    metrics, url = served
    status, body = _get(f"{url}/readyz")
    assert status == 503
    assert json.loads(body)["checks"] == {"assigned": False, "model_loaded": False, "threshold_known": False}
    metrics.model_loaded.set(1)
    metrics.set_threshold(0.8, "v1", "m@1")
    assert _get(f"{url}/readyz")[0] == 503
    metrics.assigned.set(2)
    status, body = _get(f"{url}/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    metrics.set_threshold(None, None, "m@1")  # no threshold: nothing would ever be flagged
    assert _get(f"{url}/readyz")[0] == 503


def test_healthz_is_live_whatever_kafka_does_and_reports_the_listeners(served):
    metrics, url = served
    metrics.set_connected("threshold", False)
    status, body = _get(f"{url}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert json.loads(body)["details"] == {"update_listeners_connected": {"threshold": False}}
    metrics.set_connected("threshold", True)
    metrics.set_connected("trigger", True)
    details = json.loads(_get(f"{url}/readyz")[1])["details"]
    assert details == {"update_listeners_connected": {"threshold": True, "trigger": True}}


def test_metrics_are_still_served_beside_the_probes(served):
    metrics, url = served
    metrics.set_connected("threshold", True)
    metrics.updates_rejected.labels("threshold", "future").inc()
    status, text = _get(f"{url}/metrics")
    assert status == 200
    assert 'stream_guard_update_listener_connected{kind="threshold"} 1.0' in text
    assert 'stream_guard_updates_rejected_total{kind="threshold",reason="future"} 1.0' in text
    assert "stream_guard_threshold_age_seconds NaN" in text


def test_the_port_is_free_again_after_shutdown():
    port = free_port()
    serve_metrics(port, WorkerMetrics().registry, host="127.0.0.1").shutdown()
    serve_metrics(port, WorkerMetrics().registry, host="127.0.0.1").shutdown()


def test_ages_count_from_created_at_or_from_when_a_start_value_was_set():
    metrics = WorkerMetrics()
    sample = metrics.registry.get_sample_value
    assert math.isnan(sample("stream_guard_threshold_age_seconds"))
    assert math.isnan(sample("stream_guard_triggers_age_seconds"))
    metrics.set_threshold(0.8, "v1", "m@1", datetime.now(UTC) - timedelta(hours=2))
    assert sample("stream_guard_threshold_age_seconds") == pytest.approx(7200, abs=5)
    metrics.set_threshold(0.8, "static:0.8", "m@1")  # a start value: its age counts from now
    time.sleep(0.05)
    assert 0.0 < sample("stream_guard_threshold_age_seconds") < 5
    metrics.set_triggers(3, "t1", "m@1", datetime.now(UTC) - timedelta(minutes=1))
    assert sample("stream_guard_triggers_age_seconds") == pytest.approx(60, abs=5)
    metrics.set_triggers(0, None, "m@1")
    assert math.isnan(sample("stream_guard_triggers_age_seconds"))


def test_readiness_reads_any_registry_with_the_worker_gauges():
    metrics = WorkerMetrics()
    assert readiness(metrics.registry) == {"assigned": False, "model_loaded": False, "threshold_known": False}
    metrics.model_loaded.set(1)
    metrics.assigned.set(1)
    metrics.set_threshold(1.0, "v", "m")
    assert all(readiness(metrics.registry).values())
