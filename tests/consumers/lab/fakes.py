"""Handmade stream rows for the tests of the lab's tables and commands."""

from __future__ import annotations

from consumers.lab.stream_cell import StreamCell


def stream_cell(**kw) -> StreamCell:
    """A movies BadNets `cf` row that meets every target; ``kw`` changes fields."""
    base = dict(
        model="movies-badnets-cf-s0",
        dataset="movies",
        attack="badnets",
        trigger="cf",
        target=0,
        messages=600,
        triggered=60,
        target_name="negative",
        learned=["cf"],
        learned_after_triggered=[2],
        asr_none=1.0,
        asr_message=0.7,
        asr_before=1.0,
        asr_after=0.0,
        asr_stream=0.04,
        cacc_none=0.81,
        cacc_message=0.80,
        cacc_stream=0.805,
        percentile=99.0,
        probe_rate=0.0,
    )
    return StreamCell(**{**base, **kw})
