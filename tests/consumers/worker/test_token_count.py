"""consumers.worker.token_count.token_counter: real counts when the token budget can bind, none otherwise."""

from __future__ import annotations

import pytest

from consumers.worker.token_count import token_counter
from tests.consumers.worker_support import tiny_defender

TEXTS = ["a short one", "a somewhat longer sentence about a film that was fine", ""]


@pytest.fixture(scope="module")
def defender(tmp_path_factory):
    return tiny_defender(tmp_path_factory)  # max_length 64


def _real_counts(defender) -> list[int]:
    ids = defender.classifier.tokenizer(TEXTS, truncation=True, max_length=64)["input_ids"]
    return [len(i) for i in ids]


def test_counts_tokens_when_the_budget_can_bind(defender):
    count = token_counter(defender, max_items=8, max_tokens=100)  # 8 texts x 64 tokens > 100
    assert count(TEXTS) == _real_counts(defender)
    assert count(["word " * 500]) == [64]  # capped at the model's max length
    assert token_counter(defender)(TEXTS) == _real_counts(defender)  # no limits given: always count


@pytest.mark.parametrize("max_tokens", [None, 8 * 64, 16_384])
def test_skips_the_tokenizer_when_the_budget_cannot_bind(defender, max_tokens):
    count = token_counter(defender, max_items=8, max_tokens=max_tokens)
    assert count(TEXTS) == [64, 64, 64]  # the max length: an upper bound within the budget
    assert count([]) == []
