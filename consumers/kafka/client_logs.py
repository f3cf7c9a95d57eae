"""librdkafka's logs and errors through structlog, one line per state change, and auth failures that stop.

Every config built by :class:`~consumers.kafka.settings.KafkaSettings` carries two confluent-kafka entries:

``logger``
    a :class:`KafkaLogger`: librdkafka's log lines (served by ``poll``/``consume``/``flush`` on the
    calling thread) go to the structlog logger ``librdkafka`` instead of being written to stderr by
    librdkafka's own threads.
``error_cb``
    a :class:`KafkaErrorCallback`: librdkafka's error events (broker down, all brokers down,
    authentication...) go to the same place.

Both pass through one process-wide :class:`LogLimiter`. A broker outage makes librdkafka retry every
~50 ms, each retry a log line and an error event (~40 lines a second without this module); the limiter
writes a message the first time it is seen, again after ``quiet_s`` of silence (a new episode: the
condition went away and came back), and otherwise once every ``repeat_s`` with the count of the
repeats it held back. The retry-specific parts of a message (``after 0ms in state CONNECT``,
``N identical error(s) suppressed``) are not part of what "the same message" means; the broker's name
is. So an outage gives two lines per broker (``Connect to ... failed`` and ``1/1 brokers are down``),
whatever the number of clients in the process.

Authentication failures (``_AUTHENTICATION``, ``SASL_AUTHENTICATION_FAILED``, ``UNSUPPORTED_SASL_MECHANISM``,
``ILLEGAL_SASL_STATE``) are retried by librdkafka forever. The error callback starts a clock at the first
one; when they have gone on for ``auth_timeout_s`` (no gap longer than ``quiet_s`` between two of them)
it raises :class:`KafkaAuthError` out of the client call that served it (``consume``, ``poll``,
``flush``): the worker stops with that one-line message (``stream-guard run`` exits 2). The stop comes
at the first failed attempt after the timeout: within ``auth_timeout_s`` plus one reconnect backoff
(``reconnect.backoff.max.ms``, 10 s by default).

An admin client serves no callbacks unless polled: its log lines and errors are dropped, and its calls
fail on their own timeouts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from stream_guard.errors import StreamGuardError

__all__ = [
    "AUTH_ERROR_CODES",
    "KafkaAuthError",
    "KafkaErrorCallback",
    "KafkaLogger",
    "LogLimiter",
    "client_callbacks",
]

_log = structlog.get_logger("librdkafka")

# confluent_kafka.KafkaError codes, by value: this module imports no Kafka client
AUTH_ERROR_CODES: dict[int, str] = {
    -169: "_AUTHENTICATION",
    58: "SASL_AUTHENTICATION_FAILED",
    33: "UNSUPPORTED_SASL_MECHANISM",
    34: "ILLEGAL_SASL_STATE",
}
"""Error codes that mean the broker will not let this client in: retrying does not help."""

_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")
_RETRY_DETAIL = re.compile(r"\s*\((?:after \d+ms|\d+ identical error).*$")
_LEVELS = {
    logging.CRITICAL: "critical",
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "info",
}


class KafkaAuthError(StreamGuardError):
    """Kafka refused this client's credentials or SASL mechanism for longer than the auth timeout."""


def normalize(message: str) -> str:
    """What makes two librdkafka messages "the same": no thread tag, no retry timings or counts."""
    return _RETRY_DETAIL.sub("", _THREAD.sub("", message)).strip()


@dataclass
class _Seen:
    last_emitted: float
    last_seen: float
    held_back: int = 0


class LogLimiter:
    """Decides which of many identical messages are written; thread-safe.

    Args:
        repeat_s: a message that keeps coming is written again after this long, with the count held back.
        quiet_s: a message not seen for this long starts a new episode when it comes back (written at once).
        clock: monotonic seconds (tests pass their own).
        max_keys: messages remembered; the least recently seen are forgotten beyond it.
    """

    def __init__(
        self,
        repeat_s: float = 60.0,
        quiet_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 512,
    ) -> None:
        self.repeat_s = repeat_s
        self.quiet_s = quiet_s
        self._clock = clock
        self._max_keys = max_keys
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """None: hold this one back. Else write it; the int is how many identical ones were held back."""
        now = self._clock()
        with self._lock:
            seen = self._seen.pop(key, None)  # re-inserted last: the dict stays in least-recent order
            if seen is None or now - seen.last_seen > self.quiet_s:
                self._seen[key] = _Seen(now, now)
                self._forget_oldest()
                return 0
            seen.last_seen = now
            self._seen[key] = seen
            if now - seen.last_emitted >= self.repeat_s:
                held, seen.held_back, seen.last_emitted = seen.held_back, 0, now
                return held
            seen.held_back += 1
            return None

    def _forget_oldest(self) -> None:
        while len(self._seen) > self._max_keys:
            del self._seen[next(iter(self._seen))]


_DEFAULT_LIMITER = LogLimiter()


def _emit(level: int, limiter: LogLimiter, message: str, **fields: Any) -> None:
    text = normalize(message)
    held = limiter.admit(text)
    if held is None:
        return
    if held:
        fields["repeated"] = held
    method = _LEVELS.get(level) or ("error" if level > logging.ERROR else "debug")
    getattr(_log, method)(text, **fields)


class KafkaLogger(logging.Logger):
    """The ``logger`` of a librdkafka config: confluent-kafka calls ``log(level, fmt, facility, client,
    message)`` for every librdkafka log line; it goes to structlog through the limiter."""

    def __init__(self, limiter: LogLimiter | None = None) -> None:
        super().__init__("librdkafka")
        self.limiter = limiter or _DEFAULT_LIMITER

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:  # type: ignore[override]
        if len(args) == 3:
            facility, client, message = (str(a) for a in args)
            _emit(level, self.limiter, message, client=client, facility=facility)
        else:  # not librdkafka's call shape: format it like logging would
            _emit(level, self.limiter, str(msg) % args if args else str(msg))


class KafkaErrorCallback:
    """The ``error_cb`` of a librdkafka config: logs the error (limited) and stops on lasting auth failures.

    Args:
        auth_timeout_s: how long authentication may keep failing before :class:`KafkaAuthError`; None: never.
        limiter: shared with the client's :class:`KafkaLogger`.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        auth_timeout_s: float | None = 60.0,
        limiter: LogLimiter | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.auth_timeout_s = auth_timeout_s
        self.limiter = limiter or _DEFAULT_LIMITER
        self._clock = clock
        self._auth_since: float | None = None
        self._auth_last = 0.0

    def __call__(self, error: Any) -> None:
        code, text = int(error.code()), str(error.str())
        auth = code in AUTH_ERROR_CODES
        _emit(
            logging.ERROR if auth or _is_fatal(error) else logging.WARNING,
            self.limiter,
            text,
            error=_name(error, code),
        )
        if auth:
            self._auth_failed(code, text)

    def _auth_failed(self, code: int, text: str) -> None:
        now = self._clock()
        if self._auth_since is None or now - self._auth_last > self.limiter.quiet_s:
            self._auth_since = now  # a new episode: the failures before it were followed by a success
        self._auth_last = now
        if self.auth_timeout_s is None:
            return
        lasted = now - self._auth_since
        if lasted >= self.auth_timeout_s:
            self._auth_since = None
            raise KafkaAuthError(
                f"Kafka authentication failing for {lasted:.0f} s "
                f"(STREAM_GUARD_KAFKA_AUTH_TIMEOUT_S={self.auth_timeout_s:g}): {AUTH_ERROR_CODES[code]}: "
                f"{normalize(text)}; check STREAM_GUARD_KAFKA_SECURITY_PROTOCOL, _SASL_MECHANISM, "
                "_SASL_USERNAME and _SASL_PASSWORD"
            )


def _name(error: Any, code: int) -> str:
    try:
        return str(error.name())
    except Exception:  # a stand-in error object in tests
        return AUTH_ERROR_CODES.get(code, str(code))


def _is_fatal(error: Any) -> bool:
    fatal = getattr(error, "fatal", None)
    return bool(fatal()) if callable(fatal) else False


def client_callbacks(auth_timeout_s: float | None, repeat_s: float | None = None) -> dict[str, Any]:
    """The ``logger`` and ``error_cb`` entries of one client's config (a fresh auth clock per client)."""
    limiter = _DEFAULT_LIMITER
    if repeat_s is not None and repeat_s != limiter.repeat_s:
        limiter.repeat_s = repeat_s  # one process, one setting: the last config built wins
    return {"logger": KafkaLogger(limiter), "error_cb": KafkaErrorCallback(auth_timeout_s, limiter)}
