"""`stream-guard lab choose`: pick the per-message X-GRAAD setup from validation-split grid runs; `lab
compare`: report the setups on test-split runs with the same numbers, choosing nothing.

stream-guard lab choose docs/lab/validation/shipped docs/lab/validation/p95 ... [--out docs/lab/choice.md]
stream-guard lab compare docs/lab/test/shipped docs/lab/test/p95 ... [--out docs/lab/choice-test.md]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from consumers.cli.common import fail

DefensesOpt = typer.Option(
    "xgraad,xgraad-paper", "--defenses", help="which defense rows of each run are candidates"
)


def choose_command(
    runs: list[Path] = typer.Argument(..., help="directories of `lab grid --split validation` runs"),
    defenses: str = DefensesOpt,
    max_cacc_cost: float = typer.Option(
        1.0, "--max-cacc-cost", min=0.0, help="mean clean-accuracy cost allowed, in points"
    ),
    out: Path | None = typer.Option(None, "--out", help="also write the comparison here (markdown)"),
) -> None:
    """Compare setups on the models every run evaluated; choose the lowest mean ASR within the budget."""
    from stream_guard.lab.choice import choice_markdown, choose

    found = _candidates(runs, defenses, "validation")
    chosen = choose(found, max_cacc_cost=max_cacc_cost)
    console = _print_tables(found, chosen, "validation")
    markdown = choice_markdown(found, chosen, max_cacc_cost=max_cacc_cost)
    console.print(markdown.splitlines()[-1] if chosen is None else f"chosen: {chosen.name}")
    _write(markdown, out, console)


def compare_command(
    runs: list[Path] = typer.Argument(..., help="directories of test-split `lab eval` / `lab grid` runs"),
    defenses: str = DefensesOpt,
    out: Path | None = typer.Option(None, "--out", help="also write the comparison here (markdown)"),
) -> None:
    """Report setups chosen on validation runs on test-split runs: `lab choose`'s numbers, nothing chosen."""
    from stream_guard.lab.choice import report_markdown

    found = _candidates(runs, defenses, "test")
    console = _print_tables(found, None, "test")
    console.print("test splits: reported, nothing chosen (choose on validation runs with `lab choose`)")
    _write(report_markdown(found), out, console)


def _candidates(runs: list[Path], defenses: str, split: str) -> list[Any]:
    """Every run's defense rows as candidates, judged on the models the runs share (one line on error)."""
    from stream_guard.lab.choice import candidates
    from stream_guard.lab.report import read_records

    hint = "lab grid --split validation" if split == "validation" else "lab grid"
    records, settings = {}, {}
    for run in runs:
        path = run / "results.json"
        if not path.is_file():
            fail(f"{path}: not found (write it with `stream-guard {hint} --out {run}`)")
        records[run.name] = read_records(path)
        try:
            payload_settings = json.loads(path.read_text()).get("settings")
        except (OSError, ValueError) as err:
            fail(f"{path}: {err}")
        settings[run.name] = payload_settings if isinstance(payload_settings, dict) else {}
    if len(records) < len(runs):
        fail("two runs share a directory name: give each candidate its own name")
    wanted = [d.strip() for d in defenses.split(",") if d.strip()]
    try:
        found = candidates(records, settings, defenses=wanted, split=split)
    except ValueError as err:
        fail(str(err))
    if not found:
        fail(f"none of the runs has rows of {defenses} next to an undefended row")
    return found


def _print_tables(found, chosen, split: str) -> Console:
    """The candidates' table and the per-dataset one, then each setup's description."""
    table = Table(title=f"{split} runs: {found[0].models} shared models")
    for header in ("candidate", "working", "mean ASR", "worst ASR", "ASR ≤ 0.10", "mean CACC cost"):
        table.add_column(header, justify="left" if header == "candidate" else "right")
    for c in sorted(found, key=lambda c: (c.mean_asr, c.mean_cacc_cost, c.name)):
        mark = " [bold green](chosen)[/bold green]" if c is chosen else ""
        table.add_row(
            c.name + mark,
            f"{c.working}/{c.models}",
            f"{c.mean_asr:.3f}",
            f"{c.worst_asr:.2f}",
            str(c.stopped),
            f"{c.mean_cacc_cost:+.2f}",
        )
    console = Console(highlight=False)
    console.print(table)
    console.print(_dataset_table(found, chosen))
    for c in found:  # the setups below the tables: too wide for a column
        console.print(f"{c.name}: {c.describe or '-'}")
    return console


def _write(markdown: str, out: Path | None, console: Console) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown)
        console.print(f"wrote {out}")


def _dataset_table(found, chosen) -> Table:
    """Mean ASR over each dataset's working backdoors / mean CACC cost, per candidate."""
    from stream_guard.lab.choice import dataset_cells

    names, rows = dataset_cells(found)
    table = Table(title="per dataset: mean ASR / mean CACC cost (points)")
    table.add_column("candidate")
    for name in names:
        table.add_column(name, justify="right")
    for c, shown in rows:
        table.add_row(c.name + (" (chosen)" if c is chosen else ""), *shown)
    return table
