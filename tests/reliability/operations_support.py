"""Helpers of the operations fault tests: a tiny model directory and `stream-guard` as a real process.

The commands run as ``python -m consumers.cli`` from this checkout (so the console script's ``main`` and
its error handling are what is tested), with no Kafka or update-topic settings from the developer's
environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a command under test: no STREAM_GUARD_* of the caller's, CPU, small batches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_GUARD_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "STREAM_GUARD_DEVICE": "cpu",
            "STREAM_GUARD_TORCH_THREADS": "1",
            "STREAM_GUARD_MAX_LENGTH": "64",
            "STREAM_GUARD_THRESHOLDS_TOPIC": "",  # no update listeners: these tests are about the clients
            "STREAM_GUARD_TRIGGERS_TOPIC": "",
        }
    )
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str], *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumers.cli", *args],
        cwd=REPO,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def start_cli(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a command with stdout and stderr going to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", *args],
            cwd=REPO,
            env=env or cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for_line(process: subprocess.Popen[bytes], log: Path, text: str, timeout: float) -> bool:
    """True once ``text`` is in the log; False when the process ended or ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, then the exit status (SIGKILL after ``timeout``: the status is then −9)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10)
