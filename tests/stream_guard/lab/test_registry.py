"""The defense interface: a defense registered here is evaluated like the built-in ones, and
``run_defense`` turns any defense's judgements into the counted outcome."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.defenses.base import Defense, Judgement, run_defense
from stream_guard.lab.defenses.registry import (
    DefenseContext,
    EvalOptions,
    defense_names,
    register,
    unregister,
)
from stream_guard.lab.evaluate import evaluate_model
from stream_guard.lab.inference import ProbabilityFn
from tests.stream_guard.lab.fakes import toy_model_meta


class WordDefense(Defense):
    """Rejects every text that contains ``word``; labels are the model's own."""

    name = "toy-word"
    mode = "reject"

    def __init__(self, prob_fn: ProbabilityFn, word: str) -> None:
        self.prob_fn = prob_fn
        self.word = word
        self.fitted_on: list[str] = []
        self.ids: list[str] = []

    def fit(self, validation: LabeledDataset) -> None:
        self.fitted_on = list(validation.texts)
        self.threshold = 0.5

    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        self.ids.extend(ids)
        labels = self.prob_fn(texts).argmax(axis=1)
        hits = [self.word in text.split() for text in texts]
        return [Judgement(int(y), hit, float(hit)) for y, hit in zip(labels, hits, strict=True)]

    def details(self) -> dict[str, object]:
        return {"word": self.word, "fitted_on": len(self.fitted_on)}


@pytest.fixture()
def toy_word() -> Iterator[list[WordDefense]]:
    """Registers ``toy-word`` (trigger word ``cf``) for one test; yields the defenses it built."""
    built: list[WordDefense] = []

    def factory(ctx: DefenseContext) -> WordDefense:
        built.append(WordDefense(ctx.probabilities(), "cf"))
        return built[-1]

    register("toy-word", factory)
    yield built
    unregister("toy-word")


def test_a_registered_defense_is_evaluated_like_the_built_in_ones(
    tmp_path, tiny_model_dir, toy_dataset, toy_word
) -> None:
    model = tmp_path / "toy-badnets-cf-s0"
    shutil.copytree(tiny_model_dir("bert"), model)
    (model / "meta.json").write_text(json.dumps(toy_model_meta(toy_dataset, max_length=32)))
    options = EvalOptions(
        defenses=("none", "toy-word"), max_val=20, max_test=20, max_poisoned=8, progress=False
    )
    result = evaluate_model(model, options=options)

    (defense,) = toy_word
    assert len(defense.fitted_on) == result.sizes["validation"] == 20  # fitted on validation only
    assert defense.ids == [f"c{i}" for i in range(20)] + [f"p{i}" for i in range(8)]
    none, toy = result.rows
    assert toy["defense"] == "toy-word" and toy["mode"] == "reject"
    # every poisoned text carries the trigger word and no clean toy text does
    assert toy["recall"] == 1.0 and toy["fpr"] == 0.0 and toy["precision"] == 1.0
    assert toy["auroc"] == 1.0 and toy["asr"] == 0.0 and toy["threshold"] == 0.5
    assert toy["cacc"] == none["cacc"]  # the model's own labels, no clean text rejected
    assert toy["word"] == "cf" and toy["fitted_on"] == 20
    assert toy["n_clean"] == 20 and toy["n_poisoned"] == 8
    assert result.sweep is None and not result.components  # no figures from a defense without them


def test_options_accept_only_registered_defenses(toy_word) -> None:
    assert "toy-word" in defense_names()
    assert EvalOptions(defenses=("toy-word",)).defenses == ("toy-word",)
    with pytest.raises(ValueError, match="already registered"):
        register("toy-word", lambda ctx: WordDefense(ctx.probabilities(), "cf"))
    with pytest.raises(ValueError, match="bki"):
        EvalOptions(defenses=("none", "bki"))


def test_builtin_defenses_are_registered_in_report_order() -> None:
    assert defense_names()[:5] == ("none", "xgraad-paper", "xgraad", "strip", "rap")
    assert EvalOptions().defenses == ("none", "xgraad-paper", "xgraad", "strip", "rap")


def _probs(texts: Sequence[str]) -> np.ndarray:
    """Class 1 for texts that mention "good", else class 0."""
    return np.array([[0.1, 0.9] if "good" in t else [0.9, 0.1] for t in texts])


def test_run_defense_counts_the_judgements_and_reports_details() -> None:
    defense = WordDefense(_probs, "cf")
    validation = LabeledDataset("val", ["a good one", "a bad one"], [1, 0], ["neg", "pos"])
    judged = run_defense(defense, validation, ["good film", "bad film cf"], ["cf good", "cf bad", "ok"])
    out = judged.outcome
    assert out.name == "toy-word" and out.mode == "reject" and out.threshold == 0.5
    assert out.clean_labels.tolist() == [1, 0] and out.clean_flags.tolist() == [False, True]
    assert out.poisoned_labels.tolist() == [1, 0, 0] and out.poisoned_flags.tolist() == [True, True, False]
    assert out.clean_scores.tolist() == [0.0, 1.0] and out.poisoned_scores.tolist() == [1.0, 1.0, 0.0]
    assert out.extra == {"word": "cf", "fitted_on": 2}
    assert out.seconds >= 0.0 and out.setup_seconds >= 0.0
    assert [j.flagged for j in judged.poisoned] == [True, True, False]


class _Scoreless(WordDefense):
    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        return [Judgement(j.label, j.flagged) for j in super().judge(texts, ids)]


class _Dropping(WordDefense):
    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        return super().judge(texts, ids)[:-1]


def test_a_defense_without_scores_has_no_auroc_and_one_that_drops_texts_fails() -> None:
    validation = LabeledDataset("val", ["good"], [1], ["neg", "pos"])
    out = run_defense(_Scoreless(_probs, "cf"), validation, ["good", "bad"], ["cf"]).outcome
    assert out.clean_scores is None and out.summary(np.array([1, 0]), target=1)["auroc"] is None
    with pytest.raises(RuntimeError, match="judged 1 of 2"):
        run_defense(_Dropping(_probs, "cf"), validation, ["good", "bad"], ["cf"])
