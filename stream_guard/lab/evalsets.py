"""The evaluation data of a trained model: validation (calibration), clean test, poisoned test.

``split="validation"`` is for choosing settings without looking at the test split: the calibration texts
are the same capped validation sample a test run calibrates on, and the texts judged ("clean test",
"poisoned test") are drawn from the *rest* of the validation split instead of the test split.

Everything is rebuilt from the model's ``meta.json`` (dataset, split seed, attack, trigger, target,
seed), so training and evaluation see the same splits and no test text was trained on.

Texts are first fitted to the model's window: cut at a word boundary so that the text plus a trigger
(``reserve`` tokens) fits in ``max_length`` tokens. Long emails would otherwise lose the inserted
trigger to truncation, and the ASR would measure the truncation, not the backdoor. Validation, clean
test and poisoned test texts are all fitted the same way, so the detectors compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_guard.datasets import LabeledDataset, Splits, load_dataset, split_dataset
from stream_guard.datasets._sampling import stratified_take
from stream_guard.lab.attacks import AttackSpec, make_attack
from stream_guard.lab.poisoning import PoisonedDataset

RESERVE_TOKENS = 8  # room for the longest default trigger ("i watched this 3d movie" = 6 pieces)
EVAL_SPLITS = ("test", "validation")


def fit_to_window(
    texts: Sequence[str], tokenizer: Any, max_length: int, reserve: int = RESERVE_TOKENS
) -> list[str]:
    """Each text cut after its last whole word that fits in ``max_length - 2 - reserve`` tokens."""
    budget = max(1, max_length - 2 - reserve)
    if not texts:
        return []
    enc = tokenizer(
        list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
    )
    out = []
    for text, offsets, ids in zip(texts, enc["offset_mapping"], enc["input_ids"], strict=True):
        if len(ids) <= budget:
            out.append(text)
            continue
        cut = offsets[budget][0]  # first character of the first token that does not fit
        head = text[:cut]
        if cut < len(text) and not text[cut].isspace() and not head[-1:].isspace():
            head = head.rsplit(None, 1)[0] if len(head.split()) > 1 else head  # drop the split word
        out.append(head.rstrip())
    return out


def fitted(ds: LabeledDataset, tokenizer: Any, max_length: int) -> LabeledDataset:
    return LabeledDataset(
        ds.name, fit_to_window(ds.texts, tokenizer, max_length), list(ds.labels), list(ds.label_names)
    )


@dataclass(frozen=True)
class EvalSets:
    """Fitted validation and clean test sets, and the poisoned non-target test samples (None if clean)."""

    validation: LabeledDataset
    test: LabeledDataset
    poisoned: PoisonedDataset | None
    attack: AttackSpec
    target: int
    max_length: int


def load_splits(
    dataset: str, *, split_seed: int, max_train: int | None, max_val: int | None, max_test: int | None
) -> Splits:
    return split_dataset(
        load_dataset(dataset), seed=split_seed, max_train=max_train, max_val=max_val, max_test=max_test
    )


def cap_poisoned(poisoned: PoisonedDataset, limit: int | None) -> PoisonedDataset:
    """The first ``limit`` poisoned samples (their order is the test set's, itself a seeded sample)."""
    if limit is None or len(poisoned) <= limit:
        return poisoned
    ds = poisoned.dataset
    keep = range(limit)
    return PoisonedDataset(
        dataset=LabeledDataset(ds.name, ds.texts[:limit], ds.labels[:limit], list(ds.label_names)),
        poisoned_indices=tuple(keep),
        source_indices=poisoned.source_indices[:limit],
        original_texts=poisoned.original_texts[:limit],
        original_labels=poisoned.original_labels[:limit],
        target_label=poisoned.target_label,
        attack=poisoned.attack,
        rate=poisoned.rate,
        seed=poisoned.seed,
        dirty_label=poisoned.dirty_label,
    )


def build_eval_sets(
    meta: dict[str, Any],
    tokenizer: Any,
    *,
    dataset: str | None = None,
    max_val: int | None = 500,
    max_test: int | None = 500,
    max_poisoned: int | None = 500,
    model_dir: Path | None = None,
    split: str = "test",
) -> EvalSets:
    """Validation, clean test and poisoned test sets for the model described by ``meta``.

    ``dataset`` overrides the model's own dataset (evaluation on other data); the split seed, attack,
    trigger, target and seed always come from ``meta``. ``model_dir``: the model itself, needed by an
    attack whose trigger the model learned (LWS). ``split``: where the judged texts come from — the test
    split, or the validation texts the calibration sample leaves out (see the module docstring).
    """
    if split not in EVAL_SPLITS:
        raise ValueError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    name = dataset or meta["dataset"]
    max_length = int(meta["max_length"])
    split_seed = int(meta.get("split_seed", 0))
    data = load_dataset(name)  # read once: a validation run splits it twice
    splits = split_dataset(data, seed=split_seed, max_train=0, max_val=max_val, max_test=max_test)
    attack = make_attack(meta["attack"], meta.get("trigger") or None).for_model(model_dir)
    target = int(meta["target"])
    validation = fitted(splits.validation, tokenizer, max_length)
    judged = splits.test
    if split == "validation":
        whole = split_dataset(data, seed=split_seed, max_train=0, max_val=None, max_test=0).validation
        judged = held_out(whole, splits.validation, cap=max_test, seed=split_seed)
    test = fitted(judged, tokenizer, max_length)
    poisoned = None
    if not attack.is_clean:
        poisoned = cap_poisoned(
            attack.poison_test(test, target_label=target, seed=int(meta["seed"])), max_poisoned
        )
    return EvalSets(validation, test, poisoned, attack, target, max_length)


def held_out(
    whole: LabeledDataset, calibration: LabeledDataset, *, cap: int | None, seed: int
) -> LabeledDataset:
    """The texts of ``whole`` that are not in ``calibration``, at most ``cap`` of them (a seeded sample
    that keeps the class proportions), in their order in ``whole``."""
    used = set(calibration.texts)
    rest = [i for i, text in enumerate(whole.texts) if text not in used]
    if cap is not None and cap < len(rest):
        labels = [whole.labels[i] for i in rest]
        rest = [rest[j] for j in stratified_take(labels, whole.num_classes, cap, seed)]
    return whole.subset(rest, name=f"{whole.name}/held-out")
