"""Whether the worker must count tokens: only when the micro-batcher's padded-token budget can bind.

Counting means tokenizing each message as it is polled (``MessagePipeline.encode``; the judge step then
reuses the tokens, so nothing is tokenized twice). It costs ~60 µs of CPU per short text on the consume
thread, more than the rest of the consume loop, so the worker skips it when the budget cannot bind: no
budget, or ``max_items`` texts of the model's max length fit in it (the worker's defaults). Every
message then counts as the max length, an upper bound that leaves the batches as they would be.
"""

from __future__ import annotations

__all__ = ["budget_can_bind"]


def budget_can_bind(max_length: int, max_items: int | None, max_tokens: int | None) -> bool:
    """True when ``max_items`` texts of ``max_length`` tokens could exceed ``max_tokens``."""
    if max_tokens is None:
        return False
    return max_items is None or max_items * max_length > max_tokens
