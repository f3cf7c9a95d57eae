"""`stream-guard bench`: how much X-GRAAD costs over plain classification, how much batching saves over
scoring one text at a time, and what the whole pipeline delivers — same model, same texts, one run."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer
from rich.console import Console

from consumers.cli.common import DeviceOpt, MaxLengthOpt, ModelOpt, fail, settings_from
from stream_guard.calibration import DEFAULT_PERCENTILE
from stream_guard.errors import StreamGuardError
from stream_guard.logs import configure_logging

if TYPE_CHECKING:
    import torch


def _batch_sizes(raw: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        fail(f"--batch-sizes must be comma-separated integers, got {raw!r}")
    if not sizes or min(sizes) < 1:
        fail("--batch-sizes needs at least one size, each at least 1")
    return sizes


def _autocast(choice: str, device: torch.device) -> str:
    if choice != "auto":
        return choice
    if device.type != "cuda":
        return "none"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def bench_command(
    model: str | None = ModelOpt,
    device: str | None = DeviceOpt,
    max_length: int | None = MaxLengthOpt,
    batch_sizes: str = typer.Option("8,32,128", help="comma-separated batch sizes to measure"),
    headline_batch: int = typer.Option(32, "--headline-batch", help="batch size of the headline ratios"),
    short: int = typer.Option(256, help="short texts (movie-review sentences) to score; 0 skips them"),
    long: int = typer.Option(32, help="long texts (emails) to score; 0 skips them"),
    repeats: int = typer.Option(3, min=1, help="timed repeats of every mode (the median is reported)"),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads (default: torch's choice)"),
    autocast: str = typer.Option("auto", help="auto (bf16/fp16 on CUDA, none on CPU) | none | bf16 | fp16"),
    pipeline: bool = typer.Option(True, help="also measure the broker pipeline"),
    pipeline_texts: int = typer.Option(1024, help="messages sent through the pipeline"),
    rate: float | None = typer.Option(None, help="input msg/s of the latency run (default: half of 2)"),
    worker_batch: int | None = typer.Option(
        None, min=1, help="messages the worker gathers per scoring call (default: 8 x --headline-batch)"
    ),
    flag_percentile: float = typer.Option(
        DEFAULT_PERCENTILE,
        min=0.0,
        max=100.0,
        help="pipeline threshold: this percentile of other texts' scores (the calibration default)",
    ),
    seed: int = typer.Option(0, help="seed of the text sample"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    output: Path | None = typer.Option(None, "--output", "-o", help="also write the JSON object here"),
    progress: bool = typer.Option(True, help="progress bar on stderr"),
) -> None:
    """Benchmark plain classification, batched and per-text X-GRAAD, and the pipeline."""
    from consumers.bench.pipeline_runner import run_pipeline
    from stream_guard.bench.report import render_table, report_dict
    from stream_guard.bench.runner import BenchConfig, run_bench
    from stream_guard.loading import load_classifier, resolve_device
    from stream_guard.torch_thread import set_torch_threads

    sizes = _batch_sizes(batch_sizes)
    if headline_batch not in sizes:
        sizes = tuple(sorted({*sizes, headline_batch}))
    if autocast not in {"auto", "none", "bf16", "fp16"}:
        fail(f"--autocast must be auto, none, bf16 or fp16, got {autocast!r}")
    if threads is not None:
        set_torch_threads(threads)  # the bench runs every model call on the torch thread
    configure_logging(level="ERROR")
    try:
        torch_device = resolve_device(device or settings_from().device)
        settings = settings_from(
            model=model,
            device=str(torch_device),
            max_length=max_length,
            autocast=_autocast(autocast, torch_device),
        )
        classifier = load_classifier(settings.model, device=settings.device, max_length=settings.max_length)
        config = BenchConfig(
            batch_sizes=sizes,
            headline_batch_size=headline_batch,
            texts=(("short", short), ("long", long)),
            repeats=repeats,
            pipeline=pipeline,
            pipeline_texts=pipeline_texts,
            pipeline_rate=rate,
            worker_batch=worker_batch,
            flag_percentile=flag_percentile,
            seed=seed,
            progress=progress,
        )
        report = run_bench(classifier, settings, config, pipeline_runner=run_pipeline)
    except StreamGuardError as err:
        fail(str(err))
    command = shlex.join(
        ["stream-guard", "bench", "--model", settings.model or "packaged", "--device", str(torch_device)]
        + ["--batch-sizes", ",".join(map(str, sizes)), "--headline-batch", str(headline_batch)]
        + ["--short", str(short), "--long", str(long), "--repeats", str(repeats)]
        + (["--threads", str(threads)] if threads else [])
        + ["--autocast", settings.autocast, "--seed", str(seed)]
        + (["--pipeline-texts", str(pipeline_texts)] if pipeline else ["--no-pipeline"])
        + (["--rate", str(rate)] if rate else [])
        + (["--worker-batch", str(worker_batch)] if worker_batch else [])
        + (["--flag-percentile", f"{flag_percentile:g}"] if flag_percentile != DEFAULT_PERCENTILE else [])
    )
    data = report_dict(report, command)
    encoded = orjson.dumps(data, option=orjson.OPT_INDENT_2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(encoded + b"\n")
    if json_out:
        typer.echo(encoded.decode())
    else:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=160)  # a file or a pipe: don't wrap the table
        render_table(report, console, command)
