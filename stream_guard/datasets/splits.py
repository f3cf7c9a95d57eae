"""Deterministic, stratified train / validation / test splits with no text shared between splits.

The validation split is the defender's clean calibration data (thresholds are percentiles of scores on
it); the test split is only for reporting. Texts are deduplicated first on a normalised key (case-folded,
whitespace collapsed — what an uncased tokenizer sees), so no text, nor a case/spacing variant of it, can
land in two splits. A text that occurs with two different labels is dropped altogether.

The ``max_*`` caps take stratified prefixes of each split's seeded order, so capping the training set
never changes the validation or test set (and vice versa).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_guard.datasets._sampling import class_permutations, proportional_quotas
from stream_guard.datasets.readers import DatasetError, LabeledDataset


@dataclass(frozen=True)
class Splits:
    """The three splits, plus how many samples deduplication removed before splitting."""

    train: LabeledDataset
    validation: LabeledDataset
    test: LabeledDataset
    dropped_duplicates: int = 0
    dropped_conflicting: int = 0


def normalize_text(text: str) -> str:
    """The key used for deduplication: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def deduplicate(ds: LabeledDataset) -> tuple[list[int], int, int]:
    """Indices of the first occurrence of each distinct (normalised) text with a single label.

    Returns ``(kept indices ascending, repeated copies dropped, samples dropped for conflicting labels)``.
    """
    first: dict[str, int] = {}
    labels_of: dict[str, set[int]] = {}
    for i, (text, label) in enumerate(zip(ds.texts, ds.labels, strict=True)):
        key = normalize_text(text)
        first.setdefault(key, i)
        labels_of.setdefault(key, set()).add(label)
    kept = sorted(i for key, i in first.items() if len(labels_of[key]) == 1)
    conflicting_keys = {key for key, labs in labels_of.items() if len(labs) > 1}
    conflicting = sum(1 for t in ds.texts if normalize_text(t) in conflicting_keys)
    duplicates = len(ds) - len(kept) - conflicting
    return kept, duplicates, conflicting


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _check_cap(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")


def split_dataset(
    ds: LabeledDataset,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    max_train: int | None = None,
    max_val: int | None = None,
    max_test: int | None = None,
) -> Splits:
    """Stratified split of the deduplicated dataset; the same inputs and seed give identical splits.

    Per class, ``n_c * test_fraction`` samples (rounded half up) go to test, ``n_c * val_fraction`` to
    validation and the rest to train. Each split keeps the samples' original order.
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}")
    for name, cap in (("max_train", max_train), ("max_val", max_val), ("max_test", max_test)):
        _check_cap(name, cap)

    kept, duplicates, conflicting = deduplicate(ds)
    if not kept:
        raise DatasetError(f"{ds.name}: nothing left to split after deduplication")
    kept_labels = [ds.labels[i] for i in kept]
    # per class: seeded order of positions in `kept`, then cut into test | validation | train
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for perm in class_permutations(kept_labels, ds.num_classes, seed):
        n_test = int(len(perm) * test_fraction + 0.5)
        n_val = int(len(perm) * val_fraction + 0.5)
        parts["test"].append(perm[:n_test])
        parts["validation"].append(perm[n_test : n_test + n_val])
        parts["train"].append(perm[n_test + n_val :])

    caps = {"train": max_train, "validation": max_val, "test": max_test}
    built: dict[str, LabeledDataset] = {}
    for split, per_class in parts.items():
        cap = caps[split]
        if cap is not None:
            quotas = proportional_quotas([len(p) for p in per_class], cap)
            per_class = [p[:q] for p, q in zip(per_class, quotas, strict=True)]
        positions = sorted(int(j) for p in per_class for j in p)
        built[split] = ds.subset([kept[j] for j in positions], name=f"{ds.name}/{split}")
    return Splits(
        train=built["train"],
        validation=built["validation"],
        test=built["test"],
        dropped_duplicates=duplicates,
        dropped_conflicting=conflicting,
    )
