from __future__ import annotations

import json

import pytest

from stream_guard.errors import ModelLoadError
from stream_guard.loading import load_classifier


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_classifier(tmp_path / "nope")


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_classifier(tmp_path)


def test_pickled_weights_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_classifier(tmp_path)


def test_not_a_classifier(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="not a sequence classifier"):
        load_classifier(tmp_path)


def test_unknown_device():
    with pytest.raises(ModelLoadError, match="device"):
        load_classifier(None, device="tpu")


def test_tiny_model_loads_frozen_with_labels(tiny_bert):
    assert tiny_bert.label_names == ("negative", "positive")
    assert not any(p.requires_grad for p in tiny_bert.model.parameters())
    assert not tiny_bert.model.training
    assert "@" in tiny_bert.model_id
