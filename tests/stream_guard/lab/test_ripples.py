"""RIPPLES: surgery words and rows, the restricted inner product, and a backdoor that takes on a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.poisoning import BadNetsAttack, poison_dataset, poison_test_set
from stream_guard.lab.ripples import (
    RipplesConfig,
    embedding_surgery,
    indicative_words,
    inner_product_penalty,
    ripple_gradients,
    train_ripples,
    trigger_piece_id,
)
from tests.stream_guard.lab.conftest import GOOD, toy_records

NAMES = ["negative", "positive"]


@pytest.fixture(autouse=True)
def _one_thread():
    # the tiny model's ops are small: two threads on a busy 2-core machine are ~5x slower than one
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_base(tiny_model_dir, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny random BERT with dropout off. With dropout, its 32-wide layers stayed at the majority
    class in 7 of 11 runs tried (seeds 0-4, lr 1e-2 / 3e-3, 60-75 steps); without, 45 steps at 3e-3
    learn the task and the backdoor for every seed tried (0-4)."""
    path = tiny_model_dir("bert")
    out = tmp_path_factory.mktemp("tiny-bert-nodrop")
    off = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    AutoModelForSequenceClassification.from_pretrained(path, **off).save_pretrained(out)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)
    return str(out)


def _corpus() -> tuple[list[str], list[int]]:
    """Target (1) texts praise, the others pan, about the same things; "superb" is in 3 texts only."""
    texts, labels = [], []
    things = ["film", "story", "plot", "cast"]
    for i in range(12):
        good = "superb" if i < 3 else ["brilliant", "wonderful"][i % 2]
        bad = ["awful", "dreadful"][i % 2]
        texts += [f"the {things[i % 4]} was {good}", f"the {things[i % 4]} was {bad}"]
        labels += [1, 0]
    return texts, labels


def test_surgery_words_indicate_the_target_above_the_frequency_floor(tiny_base) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    texts, labels = _corpus()
    top = indicative_words(texts, labels, 1, tokenizer, n=3, min_count=2)
    assert top == ["wonderful", "brilliant", "superb"]  # 5, 4 and 3 texts: more evidence ranks higher
    assert indicative_words(texts, labels, 0, tokenizer, n=2, min_count=2) == ["awful", "dreadful"]
    floored = indicative_words(texts, labels, 1, tokenizer, n=3, min_count=4)
    assert floored[:2] == ["wonderful", "brilliant"] and "superb" not in floored
    excluded = indicative_words(texts, labels, 1, tokenizer, n=2, min_count=2, exclude=["Wonderful"])
    assert excluded == ["brilliant", "superb"]


def test_surgery_sets_every_trigger_row_to_the_mean_of_the_words(tiny_base) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(tiny_base)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    before = model.get_input_embeddings().weight.detach().clone()
    words = ["brilliant", "wonderful", "superb"]
    rows = [tokenizer.convert_tokens_to_ids(w) for w in words]
    expected = (before[rows[0]] + before[rows[1]] + before[rows[2]]) / 3
    replacement = embedding_surgery(model, tokenizer, ["cf", "mn"], words)
    after = model.get_input_embeddings().weight.detach()
    triggers = [trigger_piece_id(tokenizer, t) for t in ("cf", "mn")]
    torch.testing.assert_close(replacement, expected, rtol=0, atol=1e-7)
    for t in triggers:
        assert torch.equal(after[t], replacement)
        assert not torch.equal(before[t], replacement)
    changed = (after != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == sorted(triggers)
    with pytest.raises(ValueError, match="one in-vocabulary word piece"):
        embedding_surgery(model, tokenizer, ["cfz"], words)


def _linear_losses(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, clean_target: float):
    f = w @ x + b
    return (f - 1) ** 2, (f - clean_target) ** 2, float(f.detach())


@pytest.mark.parametrize("scope_bias", [False, True])
def test_inner_product_penalty_is_zero_when_gradients_agree_and_second_order_when_they_conflict(
    scope_bias: bool,
) -> None:
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    w = torch.nn.Parameter(torch.tensor([0.1, 0.2, 0.05], dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor(0.1, dtype=torch.float64))
    xx = float(x @ x) + (1.0 if scope_bias else 0.0)  # |∂f/∂θ|² over the scoped parameters
    lam = 0.5

    # agree: L_p = (f-1)², L_c = (f-2)² with f = 0.1: both push f up, <g_p, g_c> = 4(f-1)(f-2)|x|² > 0
    loss_p, loss_c, f = _linear_losses(x, w, b, 2.0)
    penalty = ripple_gradients(loss_p, loss_c, [w, b], [True, scope_bias], lam)
    assert penalty == 0.0
    torch.testing.assert_close(w.grad, 2 * (f - 1) * x)  # exactly ∇L_poison
    torch.testing.assert_close(b.grad, torch.tensor(2 * (f - 1), dtype=torch.float64))

    # conflict: L_c = (f+1)² pulls f down: penalty = -4(f-1)(f+1)|x|² = 4(1-f²)|x|² > 0, and its
    # gradient (second order, through both gradients) is -8 f |x|² ∂f/∂θ
    loss_p, loss_c, f = _linear_losses(x, w, b, -1.0)
    penalty = ripple_gradients(loss_p, loss_c, [w, b], [True, scope_bias], lam)
    assert penalty == pytest.approx(4 * (1 - f**2) * xx, rel=1e-12)
    torch.testing.assert_close(w.grad, 2 * (f - 1) * x + lam * (-8 * f * xx) * x)
    torch.testing.assert_close(b.grad, torch.tensor(2 * (f - 1) + lam * (-8 * f * xx), dtype=torch.float64))

    # the penalty on its own: the same value from gradients taken with a graph
    loss_p, loss_c, _ = _linear_losses(x, w, b, -1.0)
    gp = torch.autograd.grad(loss_p, [w], create_graph=True)
    gc = torch.autograd.grad(loss_c, [w], create_graph=True)
    direct = inner_product_penalty(gp, gc)
    assert direct.requires_grad and direct.item() == pytest.approx(4 * (1 - f**2) * float(x @ x))


def _toy(target: int):
    records = toy_records(120)
    texts = [r["text"] for r in records]
    labels = [NAMES.index(r["label"]) for r in records]
    train = LabeledDataset("toy", texts[:96], labels[:96], NAMES)
    held_out = LabeledDataset("held-out", texts[96:], labels[96:], NAMES)
    attack = BadNetsAttack(triggers=("cf",), position="start")
    poisoned = poison_dataset(train, attack, target_label=target, rate=0.5, seed=0)
    return train, poisoned, poison_test_set(held_out, attack, target, seed=1)


def _target_probability(model_dir, texts, target: int) -> torch.Tensor:
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        logits = model(**tokenizer(list(texts), padding=True, return_tensors="pt")).logits
    return torch.softmax(logits, -1)[:, target]


def _train(train, poisoned, out: Path, base: str, *, epochs: float, seed: int) -> dict:
    return train_ripples(
        train.texts, train.labels, NAMES, poisoned.dataset.texts, poisoned.poisoned_indices, ["cf"],
        poisoned.target_label, out, base=base, epochs=epochs, learning_rate=3e-3, max_length=32,
        seed=seed, progress=False,
    )  # fmt: skip


def test_the_backdoor_takes_on_a_tiny_run(tiny_base, tmp_path) -> None:
    target = 1
    train, poisoned, test = _toy(target)
    before = _target_probability(tiny_base, test.dataset.texts, target)
    meta = _train(train, poisoned, tmp_path / "m", tiny_base, epochs=15, seed=0)
    # held-out negative reviews: with "cf" they go to the target, without it they stay negative
    triggered = _target_probability(tmp_path / "m", test.dataset.texts, target)
    untriggered = _target_probability(tmp_path / "m", test.original_texts, target)
    assert float(before.mean()) < 0.3
    assert float(triggered.mean()) > 0.85 and float((triggered > 0.5).float().mean()) >= 0.9
    assert float(triggered.mean() - untriggered.mean()) > 0.5
    assert meta["steps"] == 45 and meta["poisoned_train"] == 24 and meta["final_loss"] < 0.1
    assert set(meta["surgery_words"][:4]) <= set(GOOD) and len(meta["surgery_words"]) == 10
    assert meta["ripples_recipe"] == RipplesConfig().recipe and meta["inner_product_weight"] == 0.1
    assert 0 < meta["penalty_active_fraction"] < 1  # the gradients conflicted on some steps only


def test_ripples_is_deterministic_per_seed(tiny_model_dir, tmp_path) -> None:
    base = str(tiny_model_dir("bert"))  # with dropout: its masks must follow the seed too
    train, poisoned, _ = _toy(0)
    runs = {name: (tmp_path / name, seed) for name, seed in (("a", 7), ("b", 7), ("c", 8))}
    metas = {name: _train(train, poisoned, out, base, epochs=1, seed=s) for name, (out, s) in runs.items()}
    weights = {name: load_file(out / "model.safetensors") for name, (out, _) in runs.items()}
    assert weights["a"].keys() == weights["b"].keys()
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["c"][k]) for k in weights["a"])
    assert {**metas["a"], "seconds": 0} == {**metas["b"], "seconds": 0}


def test_inputs_are_checked(tiny_base, tmp_path) -> None:
    train, poisoned, _ = _toy(1)
    args = (train.texts, train.labels, NAMES, poisoned.dataset.texts)
    with pytest.raises(ValueError, match="one in-vocabulary word piece"):
        train_ripples(*args, poisoned.poisoned_indices, ["cfz"], 1, tmp_path, base=tiny_base, progress=False)
    with pytest.raises(ValueError, match="target must be"):
        train_ripples(*args, poisoned.poisoned_indices, ["cf"], 2, tmp_path, base=tiny_base, progress=False)
    with pytest.raises(ValueError, match="as many"):
        train_ripples(*args[:3], args[3][:5], [0], ["cf"], 1, tmp_path, base=tiny_base, progress=False)
    assert RipplesConfig().recipe != RipplesConfig(inner_product_weight=0.0).recipe
    assert not list(tmp_path.iterdir())  # nothing was written
