"""The texts a lab evaluation judges: the test split, or (to choose settings) the rest of validation."""

from __future__ import annotations

from collections import Counter

import pytest
from transformers import AutoTokenizer

from stream_guard.datasets import load_dataset, split_dataset
from stream_guard.lab.evalsets import build_eval_sets, held_out
from tests.stream_guard.lab.fakes import toy_model_meta


@pytest.fixture()
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir("bert"))


def test_a_validation_run_calibrates_as_a_test_run_and_judges_the_rest_of_validation(
    toy_dataset, tokenizer
) -> None:
    meta = toy_model_meta(toy_dataset, max_length=64)
    caps = {"max_val": 10, "max_test": 8, "max_poisoned": 8}
    on_test = build_eval_sets(meta, tokenizer, **caps)
    on_val = build_eval_sets(meta, tokenizer, **caps, split="validation")
    splits = split_dataset(load_dataset(str(toy_dataset)), seed=0)

    assert on_val.validation.texts == on_test.validation.texts  # the same calibration, the same threshold
    judged = set(on_val.test.texts)
    assert len(judged) == 8 and judged <= set(splits.validation.texts)
    assert not judged & set(on_val.validation.texts)  # never calibrated on what it judges
    assert not judged & set(splits.test.texts)  # and never looks at the test split
    assert Counter(on_val.test.labels) == Counter({0: 4, 1: 4})  # class proportions kept
    assert on_val.poisoned is not None and all("cf" in t.split() for t in on_val.poisoned.dataset.texts)
    assert set(on_val.poisoned.original_texts) <= judged  # poisoned copies of judged non-target texts


def test_held_out_keeps_everything_left_when_the_cap_is_larger(toy_dataset) -> None:
    validation = split_dataset(load_dataset(str(toy_dataset)), seed=0).validation
    calibration = validation.subset(range(5))
    rest = held_out(validation, calibration, cap=1000, seed=0)
    assert rest.texts == validation.texts[5:]
    one, other = (held_out(validation, calibration, cap=4, seed=s) for s in (1, 2))
    assert len(one) == 4 and set(one.texts) <= set(rest.texts)
    assert one.texts != other.texts  # a seeded sample, not the first ones


def test_an_unknown_split_is_refused(toy_dataset, tokenizer) -> None:
    with pytest.raises(ValueError, match="split must be"):
        build_eval_sets(toy_model_meta(toy_dataset), tokenizer, split="train")
