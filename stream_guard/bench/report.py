"""Render a `BenchReport`: a rich table for people, one JSON object for machines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from stream_guard.bench.runner import MODES, BenchReport, CaseResult, ModeResult

_MIB = 1024 * 1024


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _mode_dict(result: ModeResult) -> dict[str, Any]:
    return {
        "texts_per_s": _rounded(result.texts_per_s, 2),
        "tokens_per_s": _rounded(result.tokens_per_s, 1),
        "ms_per_text": _rounded(1000.0 * result.timing.median / result.texts, 3),
        "seconds": [_rounded(s, 4) for s in result.timing.seconds],
        "spread": _rounded(result.timing.spread),
        "peak_memory_bytes": result.memory.bytes,
        "memory_kind": result.memory.kind,
    }


def _case_dict(case: CaseResult) -> dict[str, Any]:
    return {
        "kind": case.kind,
        "source": case.source,
        "batch_size": case.batch_size,
        "texts": case.modes["batched"].texts,
        "mean_tokens": _rounded(case.mean_tokens, 1),
        "padding": _rounded(case.padding),
        "overhead_ratio": _rounded(case.overhead_ratio),
        "speedup_vs_per_text": _rounded(case.speedup_vs_per_text),
        "batching_gain": _rounded(case.batching_gain),
        "modes": {name: _mode_dict(case.modes[name]) for name in MODES},
    }


def report_dict(report: BenchReport, command: str | None = None) -> dict[str, Any]:
    """The JSON object: the headline ratios first (default short-text case), then every detail."""
    head = report.headline()
    pipeline = report.pipeline
    return {
        "device": report.machine["device"],
        "overhead_ratio": _rounded(head.overhead_ratio) if head else None,
        "speedup_vs_per_text": _rounded(head.speedup_vs_per_text) if head else None,
        "batching_gain": _rounded(head.batching_gain) if head else None,
        "pipeline_efficiency": _rounded(report.pipeline_efficiency),
        "pipeline_reason": report.pipeline_reason,
        "pipeline_vs_judge": _rounded(report.pipeline_vs_judge),
        "pipeline_vs_headline": _rounded(report.pipeline_vs_headline),
        "headline": {"kind": head.kind, "batch_size": head.batch_size} if head else None,
        "command": command,
        "machine": report.machine,
        "model_id": report.model_id,
        "settings": report.settings,
        "plain_attention": report.plain_attention,
        "cases": [_case_dict(c) for c in report.cases],
        "pipeline": None
        if pipeline is None
        else {
            "messages": pipeline.messages,
            "messages_per_s": _rounded(pipeline.messages_per_s, 2),
            "throughput_runs_s": [_rounded(x, 4) for x in pipeline.run_seconds],
            "first_batch_wait_ms": [_rounded(x, 1) for x in pipeline.first_batch_wait_ms],
            "input_rate": _rounded(pipeline.input_rate, 2),
            "p50_ms": _rounded(pipeline.p50_ms, 2),
            "p95_ms": _rounded(pipeline.p95_ms, 2),
            "p99_ms": _rounded(pipeline.p99_ms, 2),
            "scoring_only_texts_per_s": _rounded(
                report.pipeline_scoring.texts_per_s if report.pipeline_scoring else None, 2
            ),
            "scoring_only_seconds": [_rounded(x, 4) for x in report.pipeline_scoring.timing.seconds]
            if report.pipeline_scoring
            else None,
            "judge_only_texts_per_s": _rounded(
                report.pipeline_judging.texts_per_s if report.pipeline_judging else None, 2
            ),
            "judge_only_seconds": [_rounded(x, 4) for x in report.pipeline_judging.timing.seconds]
            if report.pipeline_judging
            else None,
            "broker": pipeline.broker,
            "worker_batch": pipeline.worker_batch,
            "flagged": pipeline.flagged,
            "judge_share": _rounded(pipeline.judge_share),
            "process_peak_memory_bytes": report.pipeline_memory.bytes if report.pipeline_memory else None,
        },
    }


def _wait_range(waits_ms: list[float]) -> str:
    if not waits_ms:
        return "? ms"
    low, high = min(waits_ms), max(waits_ms)
    return f"{low:.0f} ms" if round(low) == round(high) else f"{low:.0f}-{high:.0f} ms"


def _mib(result: ModeResult) -> str:
    return f"{result.memory.bytes / _MIB:.0f}"


def render_table(report: BenchReport, console: Console, command: str | None = None) -> None:
    """Print the scoring table, the pipeline line and where the numbers come from."""
    machine = report.machine
    table = Table(
        title=f"stream-guard bench — {report.model_id} on {machine['device']}",
        caption="texts/s: median of the repeats; spread: (max-min)/median of the repeats; "
        "2/1: X-GRAAD time over plain classification; 3/2: speedup over the peer (3: one text at a "
        "time as the authors' reference code computes it); 2b: our scoring one text at a time; "
        "2b/2: what batching alone earns; MiB: peak memory a mode adds while it runs (a run of its own)",
    )
    table.add_column("texts", no_wrap=True)
    columns = ("batch", "tok/text", "pad", "1 plain/s", "2 X-GRAAD/s", "2b per-text/s", "3 peer/s")
    for name in (*columns, "2/1", "3/2", "2b/2"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("spread 1/2/2b/3", justify="right", no_wrap=True)
    table.add_column("MiB 1/2/2b/3", justify="right", no_wrap=True)
    for case in report.cases:
        modes = case.modes
        table.add_row(
            f"{case.kind} ({case.source})",
            str(case.batch_size),
            f"{case.mean_tokens:.0f}",
            f"{100 * case.padding:.0f}%",
            *(f"{modes[m].texts_per_s:.1f}" for m in MODES),
            f"{case.overhead_ratio:.2f}×",
            f"{case.speedup_vs_per_text:.2f}×",
            f"{case.batching_gain:.2f}×",
            "/".join(f"{100 * modes[m].timing.spread:.0f}%" for m in MODES),
            "/".join(_mib(modes[m]) for m in MODES),
        )
    console.print(table)
    pipeline = report.pipeline
    if pipeline is not None:
        efficiency = report.pipeline_efficiency or 0.0
        scoring = report.pipeline_scoring.texts_per_s if report.pipeline_scoring else 0.0
        judging = report.pipeline_judging.texts_per_s if report.pipeline_judging else 0.0
        peak = report.pipeline_memory.bytes if report.pipeline_memory else 0
        console.print(
            f"4 pipeline ({pipeline.broker}; worker gathers {pipeline.worker_batch}, model batch "
            f"{report.headline_batch_size}; {pipeline.flagged}/{pipeline.messages} flagged; "
            f"{100 * (pipeline.judge_share or 0):.0f}% of its time in Defender.judge): "
            f"{pipeline.messages_per_s:.1f} msg/s = {100 * efficiency:.0f}% of X-GRAAD scoring-only "
            f"on the same texts ({scoring:.1f}/s, timed before, between and after its "
            f"{len(pipeline.run_seconds)} runs; medians; each run timed from the start of scoring of "
            f"its first batch, {_wait_range(pipeline.first_batch_wait_ms)} after the topic was full), "
            f"{100 * (report.pipeline_vs_judge or 0):.0f}% of Defender.judge-only with its threshold "
            f"({judging:.1f}/s: the rest is the Kafka glue); "
            f"latency at {pipeline.input_rate or 0:.0f} msg/s: p50 {pipeline.p50_ms or 0:.0f} ms, "
            f"p95 {pipeline.p95_ms or 0:.0f} ms, p99 {pipeline.p99_ms or 0:.0f} ms; "
            f"process peak {peak / _MIB:.0f} MiB"
        )
    else:
        console.print(f"4 pipeline: not measured ({report.pipeline_reason})")
    console.print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
        f"({machine['torch_threads']} threads); plain attention: {report.plain_attention}; "
        f"load average {machine.get('load_average_start')} -> {machine.get('load_average_end')}"
    )
    if command:
        console.print(f"command: {command}")
