"""Tests for stream_guard.datasets.splits: determinism, stratification, disjointness, caps, dedup."""

from __future__ import annotations

import pytest

from stream_guard.datasets import (
    DatasetError,
    LabeledDataset,
    Splits,
    deduplicate,
    load_dataset,
    normalize_text,
    split_dataset,
)


def _toy(n_neg: int = 60, n_pos: int = 40) -> LabeledDataset:
    texts = [f"negative text {i}" for i in range(n_neg)] + [f"positive text {i}" for i in range(n_pos)]
    return LabeledDataset("toy", texts, [0] * n_neg + [1] * n_pos, ["neg", "pos"])


def _keys(ds: LabeledDataset) -> set[str]:
    return {normalize_text(t) for t in ds.texts}


def _all(s: Splits) -> list[LabeledDataset]:
    return [s.train, s.validation, s.test]


def test_same_seed_identical_other_seed_different() -> None:
    ds = _toy()
    a, b, c = split_dataset(ds, seed=7), split_dataset(ds, seed=7), split_dataset(ds, seed=8)
    for x, y in zip(_all(a), _all(b), strict=True):
        assert x.texts == y.texts and x.labels == y.labels
    assert a.test.texts != c.test.texts


def test_stratified_sizes_and_names() -> None:
    s = split_dataset(_toy(), seed=0, val_fraction=0.2, test_fraction=0.25)
    assert s.test.label_counts() == [15, 10]
    assert s.validation.label_counts() == [12, 8]
    assert s.train.label_counts() == [33, 22]
    assert [d.name for d in _all(s)] == ["toy/train", "toy/validation", "toy/test"]
    assert all(d.label_names == ["neg", "pos"] for d in _all(s))


def test_splits_are_disjoint_and_cover_the_deduplicated_data() -> None:
    ds = load_dataset("movies", limit=3000, seed=1)
    s = split_dataset(ds, seed=1)
    train, val, test = (_keys(d) for d in _all(s))
    assert not train & val and not train & test and not val & test
    assert len(train) + len(val) + len(test) == len(_keys(ds))
    for d in _all(s):  # each split keeps roughly the class balance of the whole
        share = d.label_counts()[1] / len(d)
        assert abs(share - ds.label_counts()[1] / len(ds)) < 0.01


def test_texts_keep_their_labels_and_original_order() -> None:
    ds = _toy()
    s = split_dataset(ds, seed=3)
    position = {t: i for i, t in enumerate(ds.texts)}
    for d in _all(s):
        assert [position[t] for t in d.texts] == sorted(position[t] for t in d.texts)
        assert all(ds.labels[position[t]] == lab for t, lab in zip(d.texts, d.labels, strict=True))


def test_duplicates_and_case_variants_never_cross_splits() -> None:
    texts = ["Same text", "same  TEXT", "other", "x", "y", "z", "clash", "Clash"]
    labels = [0, 0, 1, 0, 1, 0, 0, 1]
    ds = LabeledDataset("dup", texts, labels, ["a", "b"])
    kept, duplicates, conflicting = deduplicate(ds)
    assert kept == [0, 2, 3, 4, 5]
    assert (duplicates, conflicting) == (1, 2)
    s = split_dataset(ds, seed=0, val_fraction=0.2, test_fraction=0.2)
    merged = [t for d in _all(s) for t in d.texts]
    assert sorted(merged) == sorted(["Same text", "other", "x", "y", "z"])
    assert (s.dropped_duplicates, s.dropped_conflicting) == (1, 2)


def test_caps_are_stratified_and_leave_other_splits_alone() -> None:
    ds = _toy(600, 400)
    full = split_dataset(ds, seed=5)
    capped = split_dataset(ds, seed=5, max_train=50, max_val=10)
    assert len(capped.train) == 50 and capped.train.label_counts() == [30, 20]
    assert len(capped.validation) == 10 and capped.validation.label_counts() == [6, 4]
    assert capped.test.texts == full.test.texts
    assert set(capped.train.texts) <= set(full.train.texts)
    assert split_dataset(ds, seed=5, max_test=10_000).test.texts == full.test.texts


def test_zero_fractions_put_everything_in_train() -> None:
    s = split_dataset(_toy(), val_fraction=0.0, test_fraction=0.0)
    assert len(s.train) == 100 and len(s.validation) == 0 and len(s.test) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"val_fraction": -0.1},
        {"test_fraction": 1.0},
        {"val_fraction": 0.5, "test_fraction": 0.5},
        {"max_train": -1},
        {"max_val": 2.5},
    ],
)
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        split_dataset(_toy(), **kwargs)


def test_conflicts_only_dataset_is_an_error() -> None:
    ds = LabeledDataset("c", ["a", "A"], [0, 1], ["n", "p"])
    with pytest.raises(DatasetError, match="nothing left"):
        split_dataset(ds)
