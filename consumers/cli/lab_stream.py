"""`stream-guard lab stream` (the stream-level defense through the product's commands), `stream-guard
lab readme` (the README's lab tables and results.md's stream column, from the result files) and
`stream-guard lab stream-compare` (two percentiles' stream rows side by side).

stream-guard lab stream --model DIR [--model DIR ...] --out docs/lab
stream-guard lab readme [--results docs/lab]
stream-guard lab stream-compare [--results docs/lab] --percentile 99 [--against 95]
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from consumers.cli.common import fail
from consumers.cli.lab import GRID_TITLE, checked_device


def stream_command(
    models: list[Path] = typer.Option(..., "--model", "-m", help="lab model directories (repeat)"),
    out: Path = typer.Option(Path("docs/lab"), "--out", help="where stream.md / stream.json go"),
    work: Path = typer.Option(Path("runs/stream"), "--work", help="traffic, thresholds and records"),
    trigger_rate: float = typer.Option(0.1, "--trigger-rate", help="share of messages with the trigger"),
    probe_rate: float | None = typer.Option(
        None, "--probe-rate", help="share of below-threshold texts probed (default: the product's)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the traffic order and of who gets the trigger"),
    max_test: int | None = typer.Option(None, "--max-test", help="cap on test messages (default all)"),
    percentile: float | None = typer.Option(
        None, "--percentile", help="calibration percentile (default: calibrate's, 95)"
    ),
    split: str = typer.Option(
        "test", "--split", help="test, or validation to choose settings (half calibrates, half is traffic)"
    ),
    worker: bool = typer.Option(
        False, "--worker", help="also run the traffic through `run --learn-triggers` on an embedded broker"
    ),
    device: str = typer.Option("cpu", "--device", help="the --device of calibrate, replay and run"),
    scan_bar: int = typer.Option(
        0,
        "--scan-bar",
        help="learn with the insertion bar `triggers bar` finds on this many clean training texts (0: off)",
    ),
    scan_bar_words: int | None = typer.Option(
        None, "--scan-bar-words", min=1, help="with --scan-bar: scan a seeded sample of this many words"
    ),
) -> None:
    """Measure the stream-level defense through `calibrate` and `replay --learn-triggers` (and the
    worker, `--worker`)."""
    import sys

    from consumers.lab.stream_eval import evaluate_stream
    from consumers.lab.stream_report import markdown_table, write_stream_results

    if not 0 < trigger_rate < 1 or not (probe_rate is None or 0 <= probe_rate <= 1):
        fail("need 0 < --trigger-rate < 1 and 0 <= --probe-rate <= 1")
    if split not in ("test", "validation"):
        fail("--split must be test or validation")
    cells = []
    for model_dir in models:
        if not (model_dir / "meta.json").is_file():
            fail(f"{model_dir}: no meta.json (train it with `stream-guard lab train`)")
        cells.append(
            evaluate_stream(
                model_dir,
                work / f"{model_dir.name}-{split}-p{percentile or 0:g}-probe{probe_rate or 0:g}"
                f"{'-bar' if scan_bar else ''}",
                trigger_rate=trigger_rate,
                probe_rate=probe_rate,
                seed=seed,
                max_test=max_test,
                percentile=percentile,
                split=split,
                worker=worker,
                device=checked_device(device),
                scan_bar_texts=scan_bar,
                scan_bar_words=scan_bar_words,
            )
        )
    command = (
        "stream-guard " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["lab"] else "stream-guard lab stream"
    )
    md, js = write_stream_results(cells, out, command)
    Console(highlight=False).print(markdown_table(cells) + f"\nwrote {md} and {js}")
    _rewrite_grid_summary(out)


def _rewrite_grid_summary(results: Path) -> None:
    """results.md again with the stream column of ``results``/stream.json (when both files are there)."""
    from consumers.lab.readme_tables import stream_column_from
    from stream_guard.lab.report import rewrite_results_md

    try:
        md = rewrite_results_md(results, title=GRID_TITLE, stream=stream_column_from(results))
    except (OSError, ValueError) as err:
        fail(f"{results / 'results.md'}: {err}")
    if md is not None:
        Console(highlight=False).print(f"rewrote {md} (stream column)")


def readme_command(
    results: Path = typer.Option(Path("docs/lab"), "--results", help="where stream.json / results.json live"),
    readme: Path = typer.Option(Path("README.md"), "--readme", help="the README whose lab tables to rewrite"),
) -> None:
    """Rewrite the README's lab tables (between their `<!-- lab-table:… -->` markers) from the results:
    the stream table from stream.json, the grid's summary from results.json (when there is one)."""
    from consumers.lab.readme_tables import (
        bar_readme_table,
        read_cells,
        stream_column_from,
        stream_percentile_note,
        stream_readme_table,
        update_readme,
    )
    from consumers.lab.stream_eval import default_percentile, default_probe_rate
    from stream_guard.lab.report import read_records, summary_table

    stream_json, grid_json = results / "stream.json", results / "results.json"
    if not stream_json.is_file():
        fail(f"{stream_json}: missing (run `stream-guard lab stream` first)")
    try:
        from transformers import AutoTokenizer

        from stream_guard.loading import packaged_backbone_path

        tokenize = AutoTokenizer.from_pretrained(packaged_backbone_path()).tokenize
    except (OSError, ValueError):
        tokenize = None  # no packaged backbone: split-piece triggers are not spelled out
    cells = read_cells(stream_json)
    probe_rate = default_probe_rate()
    percentile = default_percentile()
    defaults = {"percentile": percentile, "probe_rate": probe_rate, "tokenize": tokenize}
    tables = {"stream": stream_readme_table(cells, **defaults)}
    if any(c.scanned_bar is not None for c in cells):
        tables["bar"] = bar_readme_table(cells, **defaults)
    records = read_records(grid_json)
    if records:
        tables["grid"] = summary_table(records, stream_column_from(results))
        _rewrite_grid_summary(results)
    console = Console(highlight=False, soft_wrap=True)
    for name, table in tables.items():
        try:
            changed = update_readme(readme, name, table)
        except (OSError, ValueError) as err:
            fail(str(err))
        state = "rewritten" if changed else "already up to date"
        console.print(f"{table}\n{readme} ({name} table): {state}")
    note = stream_percentile_note(cells, percentile=percentile, probe_rate=probe_rate)
    if note:
        console.print(note)


def stream_compare_command(
    results: Path = typer.Option(Path("docs/lab"), "--results", help="where stream.json lives"),
    percentile: float = typer.Option(99.0, "--percentile", help="the rows compared from"),
    against: float | None = typer.Option(
        None, "--against", help="the rows compared with (default: calibrate's percentile)"
    ),
    split: str = typer.Option("test", "--split", help="test, or validation (the runs that choose settings)"),
    out: Path | None = typer.Option(None, "--out", help="also write the markdown to this file"),
) -> None:
    """Each model's stream row at two calibration percentiles side by side (the shipped learner rule,
    the product's probe rate), with means over the models replayed at both on the same weights."""
    from consumers.lab.readme_tables import read_cells
    from consumers.lab.stream_compare import compare_markdown, stream_pairs
    from consumers.lab.stream_eval import default_percentile, default_probe_rate

    path = results / "stream.json"
    if not path.is_file():
        fail(f"{path}: missing (run `stream-guard lab stream` first)")
    other = default_percentile() if against is None else against
    try:
        cells = read_cells(path)
    except (OSError, ValueError, TypeError) as err:
        fail(f"{path}: {err}")
    pairs = stream_pairs(cells, base=percentile, other=other, split=split, probe_rate=default_probe_rate())
    if not pairs:
        fail(f"{path}: no model has {split} rows at both the {percentile:g}th and the {other:g}th percentile")
    table = compare_markdown(pairs, base=percentile, other=other)
    Console(highlight=False, soft_wrap=True).print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            f"Made by `stream-guard lab stream-compare --results {results} --percentile "
            f"{percentile:g} --against {other:g} --split {split}`.\n\n{table}\n"
        )
