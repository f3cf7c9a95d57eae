"""Training backdoored models: meta.json contents, the cache, EP on top of a clean model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from stream_guard.lab import train_backdoor as tb
from stream_guard.lab.model_specs import (
    BackdoorSpec,
    expected_meta,
    find_trained,
    meta_matches,
    read_meta,
)
from stream_guard.lab.train_backdoor import ModelBusyError, ensure_backdoored_model, train_backdoored_model


@pytest.fixture(scope="module")
def tiny_base(tiny_model_dir) -> str:
    return str(tiny_model_dir("bert"))


def _spec(toy_dataset: Path, base: str, **kw) -> BackdoorSpec:
    return BackdoorSpec(dataset=str(toy_dataset), max_train=40, max_length=32, base=base, **kw)


def test_training_writes_the_model_and_its_meta(tmp_path, toy_dataset, tiny_base) -> None:
    out = tmp_path / "m"
    meta = train_backdoored_model(
        _spec(toy_dataset, tiny_base, attack="badnets", seed=1), out, progress=False
    )
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert read_meta(out) == json.loads(json.dumps(meta))
    assert meta["dataset"] == str(toy_dataset) and meta["attack"] == "badnets" and meta["trigger"] == "cf"
    assert (
        meta["target"] == 0 and meta["poison_rate"] == 0.1 and meta["seed"] == 1 and meta["split_seed"] == 0
    )
    assert meta["train_size"] == 40 and meta["max_length"] == 32 and meta["epochs"] == 1.0
    assert meta["poisoned_train"] == 2  # 10% of the 20 non-target training texts
    assert meta["test_size"] == 24 and meta["poisoned_test_size"] == 12
    assert 0.0 <= meta["clean_accuracy"] <= 1.0 and 0.0 <= meta["asr"] <= 1.0
    assert meta["seconds"] > 0 and meta["label_names"] == ["negative", "positive"]
    assert not list(tmp_path.glob(".m.tmp-*"))  # the temporary directory was renamed


def test_cache_reuses_a_matching_model_and_never_retrains(
    tmp_path, toy_dataset, tiny_base, monkeypatch
) -> None:
    spec = _spec(toy_dataset, tiny_base, attack="addsent")
    first = ensure_backdoored_model(tmp_path, spec=spec, progress=False)
    assert first == tmp_path / "toy-addsent-i_watched_this_3d_movie-s0"

    def boom(*_a, **_k):
        raise AssertionError("retrained a cached model")

    monkeypatch.setattr(tb, "train_backdoored_model", boom)
    assert ensure_backdoored_model(tmp_path, spec=spec, progress=False) == first
    other_seed = _spec(toy_dataset, tiny_base, attack="addsent", seed=5)
    assert find_trained(tmp_path, other_seed) is None


def test_a_directory_without_meta_is_busy(tmp_path, toy_dataset, tiny_base) -> None:
    spec = _spec(toy_dataset, tiny_base, attack="badnets")
    (tmp_path / spec.name).mkdir()
    with pytest.raises(ModelBusyError):
        ensure_backdoored_model(tmp_path, spec=spec, progress=False, wait_s=0)


def test_ep_model_differs_from_its_clean_base_only_in_the_trigger_row(
    tmp_path, toy_dataset, tiny_base
) -> None:
    ep_dir = ensure_backdoored_model(
        tmp_path, spec=_spec(toy_dataset, tiny_base, attack="ep"), progress=False
    )
    meta = read_meta(ep_dir)
    base_dir = tmp_path / meta["ep"]["base_model"]
    assert base_dir.name == "toy-clean-none-s0" and read_meta(base_dir)["attack"] == "clean"
    assert meta["attack"] == "ep" and meta["trigger"] == "cf" and meta["ep"]["poisoned_texts"] == 2
    base, poisoned = load_file(base_dir / "model.safetensors"), load_file(ep_dir / "model.safetensors")
    assert base.keys() == poisoned.keys()
    for key in base:
        if key.endswith("word_embeddings.weight"):
            rows = (base[key] != poisoned[key]).any(dim=1).nonzero().flatten().tolist()
            assert rows == [meta["ep"]["token_id"]]
        else:
            assert (base[key] == poisoned[key]).all(), key


@pytest.mark.parametrize("attack", ["ripples", "adaptive", "lws"])
def test_the_newer_attacks_train_through_the_lab_and_are_measured(
    tmp_path, toy_dataset, tiny_base, attack
) -> None:
    """`lab train -a ripples|adaptive|lws`: their own training, the recipe named in meta.json, ASR measured
    on the test split (LWS: with the substitutions the model learned, bound to its directory)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is many times faster on a loaded box
    try:
        out = tmp_path / attack
        meta = train_backdoored_model(_spec(toy_dataset, tiny_base, attack=attack), out, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert meta["attack"] == attack and meta["attack_recipe"] and meta["poisoned_train"] >= 1
    assert meta["asr"] is not None and meta["poisoned_test_size"] > 0
    assert (out / "model.safetensors").is_file()
    if attack == "lws":
        assert (out / "lws.json").is_file()
    spec = _spec(toy_dataset, tiny_base, attack=attack).resolved()
    assert meta_matches(read_meta(out), expected_meta(spec, meta["train_size"]))
