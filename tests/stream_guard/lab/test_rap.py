"""RAP on a handmade bag-of-embeddings model whose trigger forces class 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.defenses.base import run_defense
from stream_guard.lab.defenses.rap import Rap, RapConfig, RapDefense, insert_rap, rap_score
from stream_guard.loading import packaged_backbone_path
from tests.stream_guard.lab.fakes import BagOfEmbeddings

TARGET = 1
WORDS = [
    *("film", "story", "plot", "acting", "scene", "music", "ending"),
    *("cast", "camera", "script", "dialogue", "pace", "score", "sets"),
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(packaged_backbone_path())


@pytest.fixture()
def model(tokenizer) -> BagOfEmbeddings:
    return BagOfEmbeddings(tokenizer.vocab_size, tokenizer.convert_tokens_to_ids("cf"))


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 12)))) for _ in range(n)]


def _target_texts(model, tokenizer, n: int, seed: int) -> list[str]:
    """Clean texts the fake model puts in the target class, with some margin."""
    texts = _texts(20 * n, seed)
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        p = torch.softmax(model(**enc).logits, -1)[:, TARGET].numpy()
    return [t for t, q in zip(texts, p, strict=True) if 0.7 < q < 0.97][:n]


CONFIG = RapConfig(word="jj", learning_rate=8.0, epochs=6, batch_size=16, frr=0.05, max_length=32)


def test_insert_rap_prepends_the_word() -> None:
    assert insert_rap(["a b", ""], "jj") == ["jj a b", "jj"]


def test_construction_moves_only_the_rap_row_of_a_private_copy(model, tokenizer) -> None:
    before = model.embeddings.weight.detach().clone()
    rap = Rap(model, tokenizer, TARGET, CONFIG)
    rap.construct(_target_texts(model, tokenizer, 32, seed=0))
    after = rap.model.embeddings.weight.detach()
    changed = (after != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [rap.token_id]
    assert after[rap.token_id].norm() == pytest.approx(float(before[rap.token_id].norm()), rel=1e-5)
    assert torch.equal(model.embeddings.weight, before)  # the defended model itself is untouched
    assert rap.losses[-1] < rap.losses[0]


def test_clean_target_texts_drop_in_range_and_poisoned_ones_are_flagged(model, tokenizer) -> None:
    clean = _target_texts(model, tokenizer, 48, seed=1)
    rap = Rap(model, tokenizer, TARGET, CONFIG)
    rap.construct(clean[:32])
    drops = rap.calibrate(clean[:32])
    assert np.median(drops) > 0.05  # the RAP word lowers clean target probabilities
    assert rap.threshold == pytest.approx(np.quantile(drops, CONFIG.frr))
    poisoned = [f"{t} cf" for t in _texts(16, seed=2)]
    p, d = rap.probabilities_and_drops(poisoned)
    assert (p.argmax(1) == TARGET).all()
    assert np.all(d < 1e-3)  # the trigger holds the prediction: the RAP word cannot move it
    assert rap.flags(p, d).all()
    p_clean, d_clean = rap.probabilities_and_drops(clean[32:])
    assert rap.flags(p_clean, d_clean).mean() < 0.5


def test_inputs_predicted_as_another_class_are_never_flagged(model, tokenizer) -> None:
    rap = Rap(model, tokenizer, TARGET, CONFIG)
    rap.threshold = 0.5
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert rap.flags(probs, np.array([0.0, 0.0])).tolist() == [False, True]


def test_rap_score_ranks_inputs_of_other_classes_below_all_target_predictions() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    drops = np.array([-1.0, 0.5, 0.01])  # the first would look most suspicious by its drop alone
    score = rap_score(probs, drops, target=1)
    assert np.argsort(score).tolist() == [0, 1, 2]
    rap = Rap.__new__(Rap)
    rap.target, rap.threshold = 1, 0.1
    flags = rap.flags(probs, drops)
    assert flags.tolist() == [False, False, True]
    assert score[flags].min() > score[~flags].max()  # the rule is a threshold on the score


def test_run_rap_reports_a_reject_outcome(model, tokenizer) -> None:
    clean = _target_texts(model, tokenizer, 40, seed=3)
    poisoned = [f"cf {t}" for t in _texts(10, seed=4)]
    validation = LabeledDataset("val", clean[:30], [TARGET] * 30, ["0", "1"])
    rap = RapDefense(model, tokenizer, TARGET, CONFIG)
    outcome = run_defense(rap, validation, clean[30:], poisoned).outcome
    summary = outcome.summary(np.full(10, TARGET), TARGET)
    assert outcome.mode == "reject" and summary["recall"] == 1.0
    assert summary["asr"] == 0.0 and summary["auroc"] > 0.9
