"""``replay --compare``: judge the same traffic with two defenders (two models, or one model under two
thresholds or settings) and report where they disagree.

Each batch of accepted messages is judged by both; side A's records are the replay's output (so a
comparison run also writes the usual verdicts) and every message on which the two differ becomes a
:class:`Disagreement`: the flag, the final label (the decision to act on) or, for two models, the
model's own label. Messages are read once, so topic ranges need not be read twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from consumers.pipeline.envelope import Envelope
from consumers.pipeline.message_path import MessagePipeline, Output
from consumers.replay.run import DEFAULT_BATCH, MAX_MESSAGE_BYTES, replay_pipeline
from stream_guard.verdict import Verdict

if TYPE_CHECKING:
    from stream_guard.defender import Defender

KINDS = ("flag", "final_label", "label")


def _side(v: Verdict) -> dict[str, Any]:
    top = v.top_token()
    return {
        "model_id": v.model_id,
        "flagged": v.flagged,
        "label": v.label_name,
        "final_label": v.final_label_name,
        "anomaly_score": v.anomaly_score,
        "threshold": v.threshold,
        "top_token": top.token if top is not None else None,
    }


@dataclass(frozen=True)
class Disagreement:
    id: str
    where: str
    kinds: tuple[str, ...]
    a: dict[str, Any]
    b: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "where": self.where, "kinds": list(self.kinds), "a": self.a, "b": self.b}


def disagreement(raw: Envelope, a: Verdict, b: Verdict) -> Disagreement | None:
    kinds = []
    if a.flagged != b.flagged:
        kinds.append("flag")
    if a.final_label_name != b.final_label_name:
        kinds.append("final_label")
    if a.label_name != b.label_name:
        kinds.append("label")
    if not kinds:
        return None
    return Disagreement(a.id, raw.where, tuple(kinds), _side(a), _side(b))


@dataclass
class CompareSummary:
    compared: int = 0
    flagged_a: int = 0
    flagged_b: int = 0
    disagreements: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, a: Verdict, b: Verdict, found: Disagreement | None) -> None:
        self.compared += 1
        self.flagged_a += a.flagged
        self.flagged_b += b.flagged
        if found is not None:
            self.disagreements += 1
            self.kinds.update(found.kinds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "flagged_a": self.flagged_a,
            "flagged_b": self.flagged_b,
            "disagreements": self.disagreements,
            "by_kind": {k: self.kinds[k] for k in KINDS},
        }


def compare(
    a: Defender,
    b: Defender,
    messages: Iterable[Envelope],
    summary: CompareSummary,
    *,
    batch_size: int = DEFAULT_BATCH,
    scored_at: datetime | None = None,
    max_bytes: int | None = MAX_MESSAGE_BYTES,
) -> Iterator[tuple[Output, Disagreement | None]]:
    """Side A's records, in order, each with its disagreement with side B (None when they agree)."""
    side_a = replay_pipeline(a, scored_at=scored_at, max_bytes=max_bytes)
    side_b = MessagePipeline(b, max_bytes=max_bytes)
    for batch in side_a.batches(messages, batch_size):
        outputs = side_a.records(batch, side_a.judge(batch))
        theirs = iter(side_b.judge(batch).results)
        for admitted, output in zip(batch, outputs, strict=True):
            if admitted.accepted is None:  # a dead letter on both sides
                yield output, None
                continue
            vb = next(theirs)
            va = output.verdict
            if va is None or isinstance(vb, Exception):  # a message one side could not score
                yield output, None
                continue
            found = disagreement(output.envelope, va, vb)
            summary.add(va, vb, found)
            yield output, found
