"""The tokenizer is part of the model: required to load, and part of the model id (issue 15)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stream_guard.errors import ModelLoadError
from stream_guard.loading import load_classifier, model_fingerprint, resolve_model_path

TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _copy(src: Path, dst: Path, *, without: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst, ignore=lambda _dir, names: [n for n in names if n in without])
    return dst


def test_a_model_without_tokenizer_files_is_refused(tiny_model_dir, tmp_path):
    bare = _copy(tiny_model_dir("bert"), tmp_path / "bare", without=TOKENIZER)
    with pytest.raises(ModelLoadError, match=r"no tokenizer in .*bare: expected tokenizer\.json") as caught:
        load_classifier(bare, device="cpu")
    assert "\n" not in str(caught.value)
    with pytest.raises(ModelLoadError, match="no tokenizer"):  # the model id is refused the same way
        model_fingerprint(resolve_model_path(bare))


def test_a_tokenizer_without_vocabulary_is_refused(tiny_model_dir, tmp_path):
    """Only tokenizer_config.json: transformers builds a 5-token tokenizer (every word [UNK])."""
    model = _copy(tiny_model_dir("bert"), tmp_path / "m", without=("tokenizer.json", "vocab.txt"))
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_classifier(model, device="cpu")


def test_corrupt_weights_are_a_one_line_load_error(tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir("bert"), tmp_path / "m")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:3000])
    with pytest.raises(ModelLoadError, match="cannot load classifier") as caught:
        load_classifier(model, device="cpu")
    assert "\n" not in str(caught.value)


def test_the_fingerprint_changes_with_the_tokenizer(tiny_model_dir, tmp_path):
    original = tiny_model_dir("bert")
    same = _copy(original, tmp_path / "same")
    changed = _copy(original, tmp_path / "changed")
    config = json.loads((changed / "tokenizer_config.json").read_text())
    config["do_lower_case"] = not config.get("do_lower_case", True)
    (changed / "tokenizer_config.json").write_text(json.dumps(config))
    vocab = _copy(original, tmp_path / "vocab")
    data = json.loads((vocab / "tokenizer.json").read_text())
    words = data["model"]["vocab"]
    first, second = "the", "of"
    words[first], words[second] = words[second], words[first]  # same size, two ids swapped
    (vocab / "tokenizer.json").write_text(json.dumps(data))

    def digest(path: Path) -> str:
        return model_fingerprint(path).split("@")[1]

    assert digest(same) == digest(original)
    assert digest(changed) != digest(original)
    assert digest(vocab) != digest(original)
    assert digest(vocab) != digest(changed)


def test_the_loaded_model_id_is_the_fingerprint(tiny_model_dir, tiny_bert):
    assert tiny_bert.model_id == model_fingerprint(tiny_model_dir("bert"))
