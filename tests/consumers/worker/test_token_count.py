"""consumers.worker.token_count: the worker counts tokens only when the token budget can bind."""

from __future__ import annotations

import pytest

from consumers.worker.token_count import budget_can_bind


@pytest.mark.parametrize(
    ("max_items", "max_tokens", "binds"),
    [
        (8, 100, True),  # 8 texts x 64 tokens > 100
        (None, 100, True),  # no count limit: any budget can bind
        (8, None, False),
        (8, 8 * 64, False),  # exactly fits
        (8, 16_384, False),
        (None, None, False),
    ],
)
def test_budget_can_bind(max_items, max_tokens, binds):
    assert budget_can_bind(64, max_items, max_tokens) is binds
