"""The judge step: one ``Defender.judge`` call per batch, and the one rule that isolates a poison message.

When judging a batch raises, each of its texts is judged alone: the texts that still raise get their
exception back (the message path turns each into an ``internal`` dead letter) and the rest their
verdicts. If every text of a batch of two or more fails alone too, the scorer itself is broken (out of
memory, a broken model): the error is raised, so the worker stops without committing and a replay
stops, instead of dead-lettering every message. A batch of one that fails is that message's failure.
The worker and replay both judge through :func:`judge_texts`, so they apply the same rule. The texts
come cleaned (the admit step cleaned them) and are not cleaned again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:  # `stream-guard --help` imports the app: no torch until a model runs
    from stream_guard.defender import Defender, TokenDetail
    from stream_guard.encoding import EncodedText
    from stream_guard.verdict import Verdict

__all__ = ["JudgedBatch", "judge_texts"]

log = structlog.get_logger(__name__)


@dataclass
class JudgedBatch:
    """The verdicts of a batch's texts, in order; an Exception where that text alone could not be judged.

    seconds: wall time of the judging (0 when nothing was judged).
    started: ``time.perf_counter()`` when judging began (None: nothing was judged).
    """

    results: list[Verdict | Exception] = field(default_factory=list)
    seconds: float = 0.0
    started: float | None = None

    @property
    def judged(self) -> int:
        return len(self.results)


def judge_texts(
    defender: Defender,
    texts: Sequence[str],
    ids: Sequence[str],
    tokens: TokenDetail = "flagged",
    *,
    encoded: Sequence[EncodedText] | None = None,
) -> JudgedBatch:
    """Judge texts already cleaned by ``Defender.clean`` (and tokenized, when ``encoded`` is given) in
    one call; see the module docstring for what happens when it raises."""
    if not texts:
        return JudgedBatch()
    started = time.perf_counter()
    try:
        results: list[Verdict | Exception] = list(
            defender.judge(texts, ids, tokens=tokens, cleaned=True, encoded=encoded)
        )
    except Exception as error:
        log.warning("batch judging failed; judging its messages one by one", error=repr(error))
        each = encoded if encoded is not None else [None] * len(texts)
        results = [
            _judge_one(defender, text, mid, tokens, one)
            for text, mid, one in zip(texts, ids, each, strict=True)
        ]
        if len(results) > 1 and all(isinstance(r, Exception) for r in results):
            raise
    return JudgedBatch(results, time.perf_counter() - started, started)


def _judge_one(
    defender: Defender, text: str, message_id: str, tokens: TokenDetail, encoded: EncodedText | None
) -> Verdict | Exception:
    try:
        one = [encoded] if encoded is not None else None
        return defender.judge([text], [message_id], tokens=tokens, cleaned=True, encoded=one)[0]
    except Exception as error:
        return error
