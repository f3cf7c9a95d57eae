"""What a lab model is and where it lives (stream_guard.lab.model_specs): names, recipes, meta matching."""

from __future__ import annotations

import json

from stream_guard.lab.model_specs import BackdoorSpec, find_trained, model_name, poison_rate_note
from tests.stream_guard.lab.fakes import toy_model_meta


def test_model_names_follow_the_shared_convention() -> None:
    assert model_name("movies", "badnets", "cf", 0) == "movies-badnets-cf-s0"
    assert model_name("movies", "addsent", "i watched this 3d movie", 1) == (
        "movies-addsent-i_watched_this_3d_movie-s1"
    )
    assert BackdoorSpec(attack="badnets-split").name == "movies-badnets-cfz-s0"
    assert BackdoorSpec(dataset="spam", attack="clean").name == "spam-clean-none-s0"
    # a poison rate other than the lab's 10 % is named (the stream lab's -p20 models), a clean one never
    assert BackdoorSpec(dataset="spam", trigger="bb", poison_rate=0.2).name == "spam-badnets-bb-p20-s0"
    assert BackdoorSpec(dataset="spam", trigger="bb", poison_rate=0.1).name == "spam-badnets-bb-s0"
    assert BackdoorSpec(dataset="spam", attack="clean", poison_rate=0.2).name == "spam-clean-none-s0"


def test_the_poison_rate_is_noted_only_where_it_is_not_the_default() -> None:
    assert poison_rate_note(0.2) == " at 20%"
    assert poison_rate_note(0.1) == poison_rate_note(0.0) == poison_rate_note(None) == ""
    assert poison_rate_note("0.2") == ""  # a malformed meta field is not rendered


def test_a_model_trained_by_the_research_script_is_found(tmp_path, toy_dataset) -> None:
    """meta.json in the format of scripts/lab_research.py (no backbone entry = the packaged one)."""
    spec = BackdoorSpec(dataset=str(toy_dataset), attack="badnets", trigger="cfz", max_train=40)
    d = tmp_path / "toy-badnets-cfz-s0"
    d.mkdir()
    meta = toy_model_meta(toy_dataset, trigger="cfz", fit_train=True, seconds=1.0)
    (d / "meta.json").write_text(json.dumps(meta))
    assert find_trained(tmp_path, spec) == d
    assert (
        find_trained(tmp_path, BackdoorSpec(dataset=str(toy_dataset), attack="badnets-split", max_train=40))
        == d
    )
    assert (
        find_trained(tmp_path, BackdoorSpec(dataset=str(toy_dataset), attack="badnets", max_train=30)) is None
    )
    # trained before texts were cut to the window (the trigger mostly truncated away): not this recipe
    (d / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "fit_train"}))
    assert find_trained(tmp_path, spec) is None


def test_the_set_and_the_adaptive_attack_train_longer_than_the_movie_recipe() -> None:
    epochs = {
        a: BackdoorSpec(dataset="movies", attack=a).resolved().epochs for a in ("badnets", "badnets-set")
    }
    assert epochs == {"badnets": 1.0, "badnets-set": 2.0}
    assert BackdoorSpec(dataset="movies", attack="adaptive").resolved().epochs == 3.0
    assert BackdoorSpec(dataset="movies", attack="adaptive", epochs=1.0).resolved().epochs == 1.0


def test_meta_names_the_device_a_model_was_trained_on(monkeypatch) -> None:
    import torch

    import stream_guard.loading as loading
    from stream_guard.lab.model_specs import device_name

    assert device_name("cpu") == "cpu"
    monkeypatch.setattr(loading, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    assert device_name("auto") == "cuda: Fake GPU"
