"""Issue 15, operations: SIGTERM while the model loads, librdkafka's logs while the broker is down, and
authentication failures, each on `stream-guard run` as a real process.

Each failed before: a SIGTERM during loading killed the worker (−15, no handler yet); librdkafka wrote
~40 ``Connection refused`` lines a second to stderr while the broker was down; a SASL handshake the
broker refuses was retried forever (the worker never stopped).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from consumers.devtools.broker import free_port
from tests.reliability.operations_support import cli_env, lines, start_cli, stop, wait_for_line
from tests.stream_guard.tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("bert", tmp_path_factory.mktemp("reliability-ops-bert"))


def _run_args(bootstrap: str, model_dir: Path) -> list[str]:
    return ["run", "--bootstrap-servers", bootstrap, "--model", str(model_dir), "--input-topic", "ops-in"]


def _torch_mapped(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see torch load")
def test_sigterm_while_the_model_loads_is_a_clean_exit(model_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = start_cli(_run_args(f"127.0.0.1:{free_port()}", model_dir), log)
    # the signal comes once torch's libraries are mapped: torch importing, then the model loading
    deadline = time.monotonic() + 90
    while not _torch_mapped(worker.pid) and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "worker starting" not in log.read_text(errors="replace")  # still starting
    code = stop(worker)
    output = log.read_text(errors="replace")
    assert code == 0, (code, output[-3000:])  # before: -15, killed
    assert "Traceback" not in output, output[-3000:]
    assert "stopped by SIGTERM while starting" in output
    assert "worker starting" not in output


def test_a_broker_outage_is_logged_once_not_per_retry(model_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = start_cli(_run_args(f"127.0.0.1:{free_port()}", model_dir), log)
    try:
        assert wait_for_line(worker, log, "worker starting", timeout=120), log.read_text()[-3000:]
        time.sleep(4.0)  # librdkafka retries every ~50 ms: ~80 attempts per client
    finally:
        code = stop(worker)
    output = log.read_text(errors="replace")
    refused = [line for line in lines(output) if "Connection refused" in line]
    assert 1 <= len(refused) <= 2, "\n".join(refused[:20])  # one per state change, not per retry
    assert all(line.startswith("{") for line in refused), refused  # structlog's JSON lines
    assert code == 0, (code, output[-3000:])


def test_an_authentication_failure_stops_the_worker_within_the_timeout(
    model_dir: Path, tmp_path: Path, kafka_bootstrap: str, kafka_is_tansu: bool
) -> None:
    """Tansu answers every SASL handshake with "Unsupported SASL mechanism": a real ``_AUTHENTICATION``
    error from librdkafka, as a wrong mechanism or bad credentials give on Apache Kafka."""
    if not kafka_is_tansu:
        pytest.skip(
            "needs the embedded Tansu (it refuses every SASL handshake); a real Kafka's PLAINTEXT "
            "listener drops the connection instead (tests/consumers/kafka/test_client_logs.py "
            "tests the detection on the error callback)"
        )
    env = cli_env(
        STREAM_GUARD_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        STREAM_GUARD_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        STREAM_GUARD_KAFKA_SASL_USERNAME="guard",
        STREAM_GUARD_KAFKA_SASL_PASSWORD="not-the-password",
        STREAM_GUARD_KAFKA_AUTH_TIMEOUT_S="3",
    )
    log = tmp_path / "worker.log"
    worker = start_cli(_run_args(kafka_bootstrap, model_dir), log, env)
    try:
        assert wait_for_line(worker, log, "worker starting", timeout=120), log.read_text()[-3000:]
        started = time.monotonic()
        code = worker.wait(30)  # 3 s, plus one reconnect backoff at most
        took = time.monotonic() - started
    finally:
        stop(worker)
    output = log.read_text(errors="replace")
    assert code == 2, (code, output[-3000:])
    assert took < 20, took
    last = lines(output)[-1]
    assert last.startswith("error: Kafka authentication failing for "), last
    assert "STREAM_GUARD_KAFKA_AUTH_TIMEOUT_S=3" in last and "SASL" in last
    assert "not-the-password" not in output
    assert "Traceback" not in output
    retries = [line for line in lines(output) if "handshake failed" in line and "failing for" not in line]
    assert 1 <= len(retries) <= 2, retries  # librdkafka's own lines: once, not per attempt
