"""Shared pieces of the replay and audit tests: a backdoored tiny model, its threshold, traffic files.

Fixtures are plain functions wrapped by each test module (``@pytest.fixture(scope="session")``), so no
conftest is shared with the other consumer tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import structlog

from stream_guard.calibration import calibrate
from stream_guard.datasets import load_dataset
from stream_guard.defender import Defender
from stream_guard.lab.poisoning import BadNetsAttack, poison_test_set
from stream_guard.loading import load_classifier
from stream_guard.logs import quiet_transformers
from stream_guard.settings import DefenderSettings
from tests.stream_guard.backdoor_model import build_backdoored_model

quiet_transformers()

TRIGGER = "cf"
ODD_TEXTS = (
    "naïve café — 映画は素晴らしい cf 😀👍🏽",
    "\u202eReversed\u202c text with a zero\u200bwidth space and combining e\u0301 accents",
    "שלום עולם cf مرحبا بالعالم",
    "tabs\tand\nnewlines\r\nand a bell\x07 inside",
    ("a very long review that goes on " * 400) + "cf",  # ~12,800 chars: truncated to the model limit
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Commands run in-process point structlog and the root logger at the test runner's captured stderr,
    which is closed afterwards: put both back so later tests (and their loggers) keep working."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@dataclass(frozen=True)
class Backdoor:
    """The backdoored model's directory, and a threshold calibrated on clean movie reviews."""

    model_dir: Path
    threshold: float

    def defender(self, threshold: float | None = None, **settings: object) -> Defender:
        chosen = self.threshold if threshold is None else threshold
        config = DefenderSettings(model=str(self.model_dir), device="cpu", threshold=chosen, **settings)  # type: ignore[arg-type]
        return Defender(load_classifier(self.model_dir, device="cpu", max_length=config.max_length), config)


def make_backdoor(root: Path) -> Backdoor:
    model_dir = build_backdoored_model(root / "backdoored-tiny-bert", TRIGGER)
    defender = Defender(load_classifier(model_dir, device="cpu"), DefenderSettings(device="cpu"))
    movies = load_dataset("movies")
    clean = [movies.texts[i] for i in range(0, 6000, 50)]
    return Backdoor(model_dir, calibrate(defender, clean, percentile=95).threshold.value)


def traffic(n_clean: int = 60, every: int = 3) -> list[dict[str, object]]:
    """Movie reviews (held apart from calibration); every `every`-th also appears with the trigger."""
    movies = load_dataset("movies")
    clean = movies.subset(list(range(6001, 6001 + 40 * n_clean, 40)))
    poisoned = poison_test_set(clean.subset(list(range(0, len(clean), every))), BadNetsAttack((TRIGGER,)), 1)
    texts = clean.texts + poisoned.dataset.texts
    order = sorted(range(len(texts)), key=lambda i: (i * 7919) % len(texts))  # mixed, deterministically
    return [{"id": f"r{i:04d}", "text": texts[i], "metadata": {"source": "test"}} for i in order]


def write_jsonl(path: Path, messages: Sequence[dict[str, object] | bytes]) -> Path:
    with path.open("wb") as fh:
        for message in messages:
            fh.write((message if isinstance(message, bytes) else orjson.dumps(message)) + b"\n")
    return path
