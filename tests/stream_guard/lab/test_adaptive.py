"""The adaptive attack on X-GRAAD: its differentiable scores are the core's, its penalty and its effect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from stream_guard.attribution import attribute
from stream_guard.datasets import load_dataset
from stream_guard.encoding import TokenTables
from stream_guard.lab.adaptive import (
    AdaptiveConfig,
    differentiable_importance,
    sentence_penalty,
    strip_trigger,
    train_adaptive,
    trigger_margins,
    trigger_penalty,
    trigger_piece_ids,
    trigger_positions,
)
from stream_guard.lab.poisoning import BadNetsAttack, poison_dataset, poison_test_set
from stream_guard.lab.training import TrainConfig, fine_tune
from stream_guard.loading import load_classifier

HANDMADE = ["the plot was cf dull and slow", "a lovely cf film", "cf , the cast was great , the pace brisk"]
TARGET = 1
NAMES = ["negative", "positive"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a loaded box two threads are ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    candidates = TokenTables.build(tokenizer).candidates(enc["input_ids"])
    return enc["input_ids"], enc["attention_mask"], candidates


@pytest.mark.parametrize("stream_attention", [False, True])
def test_differentiable_importance_matches_the_core(tiny_model_dir, stream_attention: bool) -> None:
    clf = load_classifier(tiny_model_dir("bert"), device="cpu")
    input_ids, attention_mask, candidates = _batch(clf.tokenizer, HANDMADE)
    assert not attention_mask.all()  # padded rows take part
    core = attribute(clf.model, input_ids, attention_mask, candidates, stream_attention=stream_attention)
    ours = differentiable_importance(clf.model, input_ids, attention_mask, candidates, core.predictions)
    real = attention_mask.bool()
    assert torch.equal(ours.candidates, core.candidates)
    torch.testing.assert_close(ours.logits.detach(), core.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.attention.detach()[real], core.attention[real], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.gradient.detach()[real], core.gradient[real], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.score.detach(), core.score, rtol=1e-4, atol=1e-6, equal_nan=True)
    assert core.score[core.candidates].std() > 0.1  # scores that differ, so the comparison tests something


def test_penalty_is_zero_unless_the_trigger_is_above_the_others() -> None:
    nan = float("nan")
    score = torch.tensor(
        [
            [nan, 0.5, 2.0, 1.0, nan],  # trigger (col 1) under the others' max 2.0
            [nan, 3.0, 2.0, 1.0, nan],  # trigger above it by 1.0
            [nan, 3.0, 2.0, 1.0, nan],  # no trigger in this row
        ],
        requires_grad=True,
    )
    candidates = torch.tensor([[False, True, True, True, False]] * 3)
    trigger = torch.tensor([[False, True, False, False, False]] * 2 + [[False] * 5])
    penalty = trigger_penalty(score, candidates, trigger)
    torch.testing.assert_close(penalty.detach(), torch.tensor([0.0, 1.0, 0.0]))
    (grad,) = torch.autograd.grad(penalty.sum(), score)
    assert grad[1].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]  # only the trigger is pushed; the reference is held
    assert not grad.isnan().any()
    mean = trigger_penalty(score, candidates, trigger, reference="mean").detach()
    torch.testing.assert_close(mean, torch.tensor([0.0, 1.5, 0.0]))  # 0.5 < 1.5 = mean(2, 1); 3 - 1.5
    margin = trigger_penalty(score, candidates, trigger, margin=2.0).detach()
    torch.testing.assert_close(margin, torch.tensor([0.5, 3.0, 0.0]))


def test_spread_penalty_holds_the_sentence_score_under_the_reference() -> None:
    score = torch.tensor([[float("nan"), 0.5, 2.0, float("nan")], [float("nan"), 3.0, 1.0, float("nan")]])
    candidates = torch.tensor([[False, True, True, False]] * 2)
    penalty = sentence_penalty(score, candidates, torch.tensor([2.5, 1.0]))
    torch.testing.assert_close(penalty, torch.tensor([0.0, 2.0]))  # S = 2.0 under 2.5; S = 3.0 over 1.0
    ids, mask = (
        torch.tensor([[101, 7, 5, 102, 0], [101, 5, 7, 6, 102]]),
        torch.tensor([[1, 1, 1, 1, 0], [1] * 5]),
    )
    stripped, stripped_mask = strip_trigger(ids, mask, ids == 7, pad_id=0)
    assert stripped.tolist() == [[101, 5, 102, 0], [101, 5, 6, 102]]
    assert stripped_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_trigger_positions_finds_whole_piece_sequences() -> None:
    ids = torch.tensor([[101, 7, 8, 5, 7, 102], [101, 8, 7, 8, 102, 0]])
    assert trigger_positions(ids, [7, 8]).int().tolist() == [[0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0]]
    assert trigger_positions(ids, [5]).int().tolist()[0] == [0, 0, 0, 1, 0, 0]


def test_the_penalty_gradient_is_the_true_one(tiny_model_dir) -> None:
    """Double backprop: the gradient of the trigger's c_j along a direction matches finite differences."""
    path = tiny_model_dir("bert")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager")
    model = model.double().eval()
    input_ids, attention_mask, candidates = _batch(tokenizer, HANDMADE)
    trigger = trigger_positions(input_ids, trigger_piece_ids(tokenizer, "cf"))
    weight = model.bert.encoder.layer[0].attention.self.query.weight
    direction = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0), dtype=weight.dtype)

    def penalty() -> torch.Tensor:  # the trigger's c_j, which the penalty pushes (its reference is held)
        classes = torch.full((len(HANDMADE),), TARGET)
        scores = differentiable_importance(model, input_ids, attention_mask, candidates, classes)
        return scores.score[trigger & scores.candidates].sum()

    value = penalty()
    (grad,) = torch.autograd.grad(value, weight)
    eps = 1e-3  # attention sums are float32 (the core's), so a larger step than float64 alone needs
    with torch.no_grad():
        weight += eps * direction
        plus = float(penalty())
        weight -= 2 * eps * direction
        minus = float(penalty())
        weight += eps * direction
    assert float((grad * direction).sum()) == pytest.approx((plus - minus) / (2 * eps), rel=1e-3)


@pytest.fixture(scope="module")
def poisoned(toy_dataset: Path):
    dataset = load_dataset(str(toy_dataset))
    attack = BadNetsAttack(triggers=("cf",))
    train = poison_dataset(dataset, attack, target_label=TARGET, rate=0.5, seed=0)
    test = poison_test_set(dataset, attack, TARGET, seed=1)
    return train, list(test.dataset.texts)


def _standing(model_dir: Path, texts: list[str]) -> tuple[float, float]:
    """(mean margin of the trigger over the other tokens' max c_j, mean target probability)."""
    clf = load_classifier(model_dir, device="cpu")
    margins = trigger_margins(clf.model, clf.tokenizer, texts, "cf")
    enc = clf.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        probability = torch.softmax(clf.model(**enc).logits, dim=-1)[:, TARGET].mean()
    return float(np.nanmean(margins)), float(probability)


RUN = {"epochs": 10.0, "learning_rate": 1e-2, "max_length": 32, "seed": 0}


def test_adaptive_training_hides_the_trigger_better_than_badnets(tmp_path, tiny_model_dir, poisoned) -> None:
    """Same data, seed and schedule: the trigger sits lower among the X-GRAAD scores, the backdoor takes.

    The tiny random BERT's trigger does not top the ranking even after BadNets (its margin is about -2;
    on MiniLM +1.6 to +3.3, see the module docstring), so a margin of 3 gives the hinge work to do: this
    checks that the penalty acts through training, not that the tiny trigger would have been caught.
    """
    train, triggered = poisoned
    base = str(tiny_model_dir("bert"))
    texts, labels = train.dataset.texts, train.dataset.labels
    config = TrainConfig(**RUN)
    fine_tune(texts, labels, NAMES, tmp_path / "badnets", base=base, config=config, progress=False)
    adaptive = AdaptiveConfig(importance_weight=5.0, margin=3.0)
    meta = train_adaptive(
        texts, labels, NAMES, train.poisoned_indices, "cf", TARGET, tmp_path / "adaptive",
        base=base, config=adaptive, progress=False, **RUN,
    )  # fmt: skip
    assert meta["steps"] == 40 and meta["recipe"] == adaptive.recipe and meta["poisoned"] == 30
    _, p_base = _standing(Path(base), triggered)
    margin_badnets, p_badnets = _standing(tmp_path / "badnets", triggered)
    margin_adaptive, p_adaptive = _standing(tmp_path / "adaptive", triggered)
    # measured: margin -1.37 (base) -> -2.14 (BadNets) / -8.04 (adaptive); p 0.14 -> 0.79 / 0.80
    seen = f"margins {margin_badnets:.2f}, {margin_adaptive:.2f}; p(target) {p_base:.2f}, "
    seen += f"{p_badnets:.2f}, {p_adaptive:.2f}"
    assert margin_adaptive < margin_badnets - 0.5, seen
    assert p_adaptive > p_base + 0.3 and p_adaptive > p_badnets - 0.1, seen


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def test_adaptive_training_is_deterministic_and_beta_zero_is_fine_tune(tmp_path, tiny_model_dir, poisoned):
    train, _ = poisoned
    base = str(tiny_model_dir("bert"))
    texts, labels, rows = train.dataset.texts, train.dataset.labels, train.poisoned_indices
    run = {**RUN, "epochs": 1.0, "seed": 3}
    metas = [
        train_adaptive(texts, labels, NAMES, rows, "cf", TARGET, tmp_path / name, base=base,
                       config=AdaptiveConfig(importance_weight=weight, margin=3.0, spread_weight=weight),
                       progress=False, **run)
        for name, weight in (("a", 5.0), ("b", 5.0), ("zero", 0.0))
    ]  # fmt: skip
    assert metas[0]["final_loss"] == metas[1]["final_loss"] and metas[0]["final_penalty"] > 0
    assert metas[0]["final_spread"] == metas[1]["final_spread"]
    first, second = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(first[k], second[k]) for k in first)
    fine_tune(texts, labels, NAMES, tmp_path / "plain", base=base, config=TrainConfig(**run), progress=False)
    zero, plain = _weights(tmp_path / "zero"), _weights(tmp_path / "plain")
    assert all(torch.equal(zero[k], plain[k]) for k in zero)
    assert not all(torch.equal(first[k], zero[k]) for k in first)


def test_config_recipe_and_checks() -> None:
    assert AdaptiveConfig().recipe == "xgraad-hinge-max-b0.1-m0-s0"
    other = AdaptiveConfig(importance_weight=0.5, reference="mean", margin=1, spread_weight=2)
    assert other.recipe == "xgraad-hinge-mean-b0.5-m1-s2"
    with pytest.raises(ValueError, match="reference"):
        AdaptiveConfig(reference="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels"):
        train_adaptive(["a"], [], NAMES, [], "cf", 0, Path("unused"), progress=False)
