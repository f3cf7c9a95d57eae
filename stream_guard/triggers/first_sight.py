"""First sight: the per-message attribution's top word, tested the first time it comes.

The X-GRAAD ranking puts an inserted rare trigger at the top of its message far more often than the
sentence score clears a strict threshold (on the lab's model with a set of five rare words, the trigger
was the top word of 58 of 60 triggered messages while the 99th-percentile threshold flagged 14 %). So
the top word of a message that scores high *for this traffic* is worth an insertion test at once,
before it has recurred: a trigger learned on its first sight is in force from that very message (the
learning judge judges it again), and each word of a set of triggers costs one message instead of three.

What is tested is bounded twice. :class:`AnomalyRanks` keeps the anomaly scores of the recent traffic,
and a token bucket refilled at a fixed rate per message pays for the tests (a flood of high-scoring
messages with fresh rare words costs a bounded number of model calls, as the recurrence budget does).
The bucket also sets the bar (:meth:`TokenBucket.gate`): with it full, a message scoring at least the
``quantile`` of the recent scores nominates its top word; as it empties the bar rises towards the very
top, so the tests go to the highest-scoring messages instead of the first ones — measured on the lab's
movie traffic, where most messages hold a word the 500 clean texts lack, a fixed bar at the median
spent the budget on the first benign words and let the trigger's first messages by untested.
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
        """The share of the recent scores below ``value`` (0.0 while fewer than ``min_seen`` were seen:
        without a history no score is high for its traffic); ``value`` then joins the window."""
        seen = len(self._sorted)
        rank = bisect.bisect_left(self._sorted, value) / seen if seen >= self.min_seen else 0.0
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

    def gate(self, floor: float) -> float:
        """The anomaly rank a nominee needs: ``floor`` with the bucket full, rising (quadratically: slowly
        at first) to 1 as it empties; the bucket then settles where the nominees that clear the bar match
        the refill rate."""
        if self.burst <= 0:
            return 1.0
        return floor + (1.0 - floor) * (1.0 - self.tokens / self.burst) ** 2

    def take(self) -> bool:
        """Spend one token if there is one."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
