"""Two calibration percentiles' stream rows side by side, per model (`stream-guard lab stream-compare`).

`lab stream` writes one row per model and setting; after the per-message default moved, the question is
what the move did to the stream-level defense on the same weights and the same traffic. A pair counts
in the means only when both rows saw the same undefended outcome (same messages, same ASR\\* and CACC
without defense: the same weights, not a retraining of the recipe) and the model has a working backdoor
or none at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consumers.lab.readme_tables import StreamTargets
from consumers.lab.stream_cell import StreamCell

__all__ = ["StreamPair", "StreamPairMeans", "compare_markdown", "pair_means", "stream_pairs"]


@dataclass(frozen=True)
class StreamPair:
    """One model's row at the ``base`` percentile and at the ``other``."""

    base: StreamCell
    other: StreamCell

    @property
    def model(self) -> str:
        return self.base.model

    @property
    def same_weights(self) -> bool:
        """Both rows saw the same traffic and the same undefended outcome."""
        b, o = self.base, self.other
        return (b.messages, b.triggered, b.asr_none, b.cacc_none) == (
            o.messages,
            o.triggered,
            o.asr_none,
            o.cacc_none,
        )

    @property
    def counted(self) -> bool:
        """In the means: the same weights, and a working backdoor or a clean model."""
        working = self.base.asr_none is not None and self.base.asr_none >= StreamTargets.working_backdoor
        return self.same_weights and (working or self.base.attack == "clean")


@dataclass(frozen=True)
class StreamPairMeans:
    """Means over the counted pairs (ASR\\* over the whole stream and per message, CACC cost in points)."""

    models: int
    asr_stream: tuple[float, float]
    asr_message: tuple[float, float]
    cacc_cost: tuple[float, float]
    over_cacc_target: tuple[int, int]  # rows whose stream CACC fell more than the target (1 point)
    learned_differs: int  # models whose learned set differs between the two


def _rows(
    cells: Sequence[StreamCell], percentile: float, split: str, probe_rate: float
) -> dict[str, StreamCell]:
    """The shipped-rule rows at ``percentile`` per model (the last one, when a model has several)."""
    return {
        c.model: c
        for c in cells
        if c.split == split
        and c.percentile == percentile
        and c.probe_rate == probe_rate
        and c.scanned_bar is None
    }


def stream_pairs(
    cells: Sequence[StreamCell], *, base: float, other: float, split: str = "test", probe_rate: float = 0.0
) -> list[StreamPair]:
    """The models with a row at both percentiles, by name."""
    at_base, at_other = _rows(cells, base, split, probe_rate), _rows(cells, other, split, probe_rate)
    return [StreamPair(at_base[m], at_other[m]) for m in sorted(at_base.keys() & at_other.keys())]


def _cost(cell: StreamCell) -> float:
    return 100 * (cell.cacc_none - cell.cacc_stream)


def pair_means(pairs: Sequence[StreamPair], dataset: str | None = None) -> StreamPairMeans | None:
    """Means over the counted pairs (of ``dataset`` when given); None when no pair counts."""
    counted = [p for p in pairs if p.counted and (dataset is None or p.base.dataset == dataset)]
    if not counted:
        return None
    n = len(counted)

    def mean(values: list[float]) -> float:
        return sum(values) / n

    def both(get) -> tuple[float, float]:
        return mean([get(p.base) for p in counted]), mean([get(p.other) for p in counted])

    over = StreamTargets.cacc_drop * 100 + 1e-6
    return StreamPairMeans(
        models=n,
        asr_stream=both(lambda c: c.asr_stream or 0.0),
        asr_message=both(lambda c: c.asr_message or 0.0),
        cacc_cost=both(_cost),
        over_cacc_target=(
            sum(_cost(p.base) > over for p in counted),
            sum(_cost(p.other) > over for p in counted),
        ),
        learned_differs=sum(sorted(p.base.learned) != sorted(p.other.learned) for p in counted),
    )


def _learned(cell: StreamCell) -> str:
    pairs = sorted(zip(cell.learned_after_triggered, cell.learned, strict=True))
    return ", ".join(f"`{w}` ({n})" for n, w in pairs) or "none"


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def compare_markdown(pairs: Sequence[StreamPair], *, base: float, other: float) -> str:
    """The per-model table and the means (all, then per dataset) as markdown."""
    a, b = f"p{base:g}", f"p{other:g}"
    lines = [
        f"| model | counted | learned {a} → {b} (after n triggered) | ASR\\* stream {a} → {b} "
        f"| ASR\\* per-message {a} → {b} | CACC none | CACC stream {a} → {b} | clean flagged {a} → {b} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in pairs:
        why = (
            "yes" if p.counted else ("no: other weights" if not p.same_weights else "no: no working backdoor")
        )
        learned = _learned(p.base) + (
            " (same)" if p.base.learned == p.other.learned else f" → {_learned(p.other)}"
        )
        lines.append(
            f"| {p.model} | {why} | {learned} | {_f(p.base.asr_stream)} → {_f(p.other.asr_stream)} | "
            f"{_f(p.base.asr_message)} → {_f(p.other.asr_message)} | {p.other.cacc_none:.3f} | "
            f"{p.base.cacc_stream:.3f} → {p.other.cacc_stream:.3f} | "
            f"{p.base.clean_flagged_stream:.1%} → {p.other.clean_flagged_stream:.1%} |"
        )
    lines += [
        "",
        f"| models counted | ASR\\* stream {a} → {b} | ASR\\* per-message {a} → {b} "
        f"| CACC cost (points) {a} → {b} | rows over the 1-point CACC target {a} → {b} "
        "| learned set differs |",
        "|---|---|---|---|---|---|",
    ]
    for dataset in [None, *sorted({p.base.dataset for p in pairs})]:
        m = pair_means(pairs, dataset)
        if m is None:
            continue
        lines.append(
            f"| {dataset or 'all'}: {m.models} | {m.asr_stream[0]:.3f} → {m.asr_stream[1]:.3f} | "
            f"{m.asr_message[0]:.3f} → {m.asr_message[1]:.3f} | "
            f"{m.cacc_cost[0]:+.2f} → {m.cacc_cost[1]:+.2f} | "
            f"{m.over_cacc_target[0]} → {m.over_cacc_target[1]} | {m.learned_differs} |"
        )
    return "\n".join(lines)
