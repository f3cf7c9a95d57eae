"""How many tokens a message will take in a model batch, for the micro-batcher's padded-token budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream_guard.defender import Defender

__all__ = ["token_counter"]


def token_counter(
    defender: Defender, max_items: int | None = None, max_tokens: int | None = None
) -> Callable[[Sequence[str]], list[int]]:
    """Counts the tokens (special tokens included, capped at the model's max length) of texts at once.

    Given the batcher's limits, it skips the tokenizer when the padded-token budget cannot bind
    (none, or `max_items` texts of the model's max length fit in it, as with the worker's defaults):
    every text then counts as the max length, an upper bound that leaves the batches as they would
    be. Counting costs ~60 µs of CPU per short text, more than the rest of the consume loop.
    """
    tokenizer = defender.classifier.tokenizer
    limit = defender.classifier.max_length
    if max_items is not None and (max_tokens is None or max_items * limit <= max_tokens):
        return lambda texts: [limit] * len(texts)

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=True,
            max_length=limit,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    return count
