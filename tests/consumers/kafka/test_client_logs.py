"""librdkafka logs through structlog, limited to one line per state change; lasting auth failures stop."""

from __future__ import annotations

import logging
import time

import pytest
import structlog
from confluent_kafka import Consumer, KafkaError

from consumers.devtools.broker import free_port
from consumers.kafka.client_logs import (
    KafkaAuthError,
    KafkaErrorCallback,
    KafkaLogger,
    LogLimiter,
    normalize,
)
from consumers.kafka.settings import KafkaSettings
from stream_guard.errors import StreamGuardError

REFUSED = "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused"
AUTH = (
    "sasl_plaintext://127.0.0.1:4/bootstrap: SASL PLAIN mechanism handshake failed: Broker: Unsupported "
    "SASL mechanism: broker's supported mechanisms: PLAIN (after 0ms in state AUTH_HANDSHAKE)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_retry_details_are_not_part_of_a_message() -> None:
    assert normalize(f"[thrd:127.0.0.1:9/bootstrap]: {REFUSED} (after 0ms in state CONNECT)") == REFUSED
    assert normalize(f"{REFUSED} (after 12ms in state CONNECT, 30 identical error(s) suppressed)") == REFUSED
    assert normalize("1/1 brokers are down") == "1/1 brokers are down"


def test_limiter_writes_first_then_every_repeat_s_then_after_a_quiet_gap() -> None:
    clock = Clock()
    limiter = LogLimiter(repeat_s=60, quiet_s=30, clock=clock)
    assert limiter.admit("a") == 0
    written = []
    for _ in range(960):  # 16 a second for 60 s
        clock.now += 0.0625
        written.append(limiter.admit("a"))
    assert [w for w in written if w is not None] == [959]  # once more after 60 s, with the count
    assert limiter.admit("b") == 0  # another message (a state change) is written at once
    clock.now += 31  # quiet: the condition went away; it coming back is a new episode
    assert limiter.admit("a") == 0


def test_librdkafka_lines_go_through_structlog_once_while_the_broker_is_down() -> None:
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    consumer = Consumer(settings.consumer_config("g"))
    consumer.subscribe(["t"])
    with structlog.testing.capture_logs() as logs:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            consumer.consume(10, 0.1)
    consumer.close()
    refused = [e for e in logs if "Connection refused" in e["event"]]
    assert len(refused) == 1, logs  # librdkafka retried ~50 times
    assert refused[0]["log_level"] == "error" and "#consumer" in refused[0]["client"]
    assert len(logs) <= 3, logs  # and "1/1 brokers are down"


class FakeError:
    def __init__(self, code: int, text: str) -> None:
        self._code, self._text = code, text

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text

    def name(self) -> str:
        return "X"

    def fatal(self) -> bool:
        return False


def test_auth_failures_stop_after_the_timeout_with_a_clear_message() -> None:
    clock = Clock()
    callback = KafkaErrorCallback(5.0, LogLimiter(clock=clock), clock=clock)
    with structlog.testing.capture_logs() as logs:
        for _ in range(80):  # a failed handshake 16 times a second, the last at 4.94 s: still retrying
            callback(FakeError(KafkaError._AUTHENTICATION, AUTH))
            clock.now += 0.0625
        with pytest.raises(KafkaAuthError, match="authentication failing for 5 s") as caught:
            callback(FakeError(KafkaError._AUTHENTICATION, AUTH))
    message = str(caught.value)
    assert "\n" not in message and "Unsupported SASL mechanism" in message
    assert "STREAM_GUARD_KAFKA_AUTH_TIMEOUT_S=5" in message and "after 0ms" not in message
    assert isinstance(caught.value, StreamGuardError)  # the CLI's one-line errors
    assert len(logs) == 1 and logs[0]["log_level"] == "error"


def test_other_errors_and_interrupted_auth_failures_do_not_stop() -> None:
    clock = Clock()
    callback = KafkaErrorCallback(5.0, LogLimiter(quiet_s=30, clock=clock), clock=clock)
    for _ in range(200):
        callback(FakeError(KafkaError._TRANSPORT, REFUSED))
        clock.now += 0.1
    callback(FakeError(KafkaError._AUTHENTICATION, AUTH))
    clock.now += 31  # no failure for longer than the quiet gap: authentication had worked in between
    callback(FakeError(KafkaError._AUTHENTICATION, AUTH))
    clock.now += 4
    callback(FakeError(KafkaError._AUTHENTICATION, AUTH))  # 4 s into the new episode: not yet
    never = KafkaErrorCallback(None, LogLimiter(clock=clock), clock=clock)
    for _ in range(100):
        never(FakeError(KafkaError.SASL_AUTHENTICATION_FAILED, "bad credentials"))
        clock.now += 1


def test_the_logger_is_a_logging_logger_and_takes_other_call_shapes() -> None:
    logger = KafkaLogger(LogLimiter())
    assert isinstance(logger, logging.Logger)
    with structlog.testing.capture_logs() as logs:
        logger.log(logging.WARNING, "%s [%s] %s", "FAIL", "rdkafka#producer-1", f"[thrd:x]: {REFUSED}")
        logger.log(logging.INFO, "plain %d", 3)
    assert [e["event"] for e in logs] == [REFUSED, "plain 3"]
    assert logs[0]["facility"] == "FAIL" and logs[0]["log_level"] == "warning"
