"""First sight: the per-message attribution's top word, tested the first time it comes.

The X-GRAAD ranking puts an inserted rare trigger at the top of its message far more often than the
sentence score clears a strict threshold (on the lab's model with a set of five rare words, the trigger
was the top word of 58 of 60 triggered messages while the 99th-percentile threshold flagged 14 %). So
the top word of a message that scores high *for this traffic* is worth an insertion test at once,
before it has recurred: a trigger learned on its first sight is in force from that very message (the
learning judge judges it again), and each word of a set of triggers costs one message instead of three.

What is tested is bounded twice. :class:`AnomalyRanks` keeps the anomaly scores of the recent traffic:
only a message scoring at least their ``quantile`` nominates its top word. And a token bucket refilled
at a fixed rate per message pays for the tests: a flood of high-scoring messages with fresh rare words
costs a bounded number of model calls, as the recurrence budget does.
"""

from __future__ import annotations

import bisect
from collections import deque

__all__ = ["AnomalyRanks", "TokenBucket"]


class AnomalyRanks:
    """The rank of each new anomaly score among the last ``window`` ones (itself included from then)."""

    def __init__(self, window: int = 2000, min_seen: int = 20) -> None:
        self.window = window
        self.min_seen = min_seen
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    def add(self, value: float) -> float:
        """The share of the recent scores below ``value`` (1.0 while fewer than ``min_seen`` were seen:
        no history, no gate); ``value`` then joins the window."""
        seen = len(self._sorted)
        rank = bisect.bisect_left(self._sorted, value) / seen if seen >= self.min_seen else 1.0
        self._recent.append(value)
        bisect.insort(self._sorted, value)
        if len(self._recent) > self.window:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        return rank


class TokenBucket:
    """``rate`` tokens a message, at most ``burst`` saved: what pays for insertion tests."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst

    def refill(self, messages: int = 1) -> None:
        self.tokens = min(self.burst, self.tokens + self.rate * messages)

    def take(self) -> bool:
        """Spend one token if there is one."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
