"""Model fixtures for the core's tests: tiny random models of each architecture, the packaged backbone."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_guard.loading import LoadedClassifier, load_classifier
from stream_guard.logs import quiet_transformers
from tests.stream_guard.tiny_models import build_tiny_model, tiny_configs

ARCHITECTURES = list(tiny_configs())
quiet_transformers()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = build_tiny_model(arch, tmp_path_factory.mktemp(f"tiny-{arch}"))
        return cache[arch]

    return make


@pytest.fixture(scope="session")
def tiny_bert(tiny_model_dir) -> LoadedClassifier:
    return load_classifier(tiny_model_dir("bert"), device="cpu")


@pytest.fixture(scope="session")
def backbone() -> LoadedClassifier:
    return load_classifier(None, device="cpu")
