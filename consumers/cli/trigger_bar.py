"""`stream-guard triggers bar`: how low may the learner's insertion bar go on this model?

Scans the ordinary words of a sample of the model's traffic with the learner's own insertion test
(:mod:`stream_guard.triggers.bar_scan`) and prints the strongest of them and the lowest bar that keeps a
margin above all of them, as the settings to apply: ``STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN``,
which lets the learner take a partial backdoor's words (absent from clean text, turning 65–85 % of
texts) on a model whose ordinary words stay low, and ``STREAM_GUARD_LEARN_MIN_INSERTION_RATE`` too on a
model whose ordinary words reach above the learner's own bar. Nothing is published or changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from consumers.cli.common import DeviceOpt, ModelOpt, build_defender, fail, settings_from


def bar_command(
    traffic: str = typer.Option(
        ..., "--traffic", help="a sample of the model's traffic (.jsonl / .csv / .txt file or a lab dataset)"
    ),
    clean_texts: str = typer.Option(
        ..., "--clean-texts", help="the learner's clean texts (a lab dataset's validation split or a file)"
    ),
    model: str | None = ModelOpt,
    device: str | None = DeviceOpt,
    exclude: list[str] = typer.Option([], "--exclude", help="known triggers to leave out (repeatable)"),
    min_texts: int = typer.Option(2, "--min-texts", min=1, help="scan words in at least this many texts"),
    max_words: int | None = typer.Option(
        None,
        "--max-words",
        min=1,
        help="scan a seeded sample of this many words (long texts: a bound on time)",
    ),
    margin: float = typer.Option(0.1, "--margin", min=0.0, max=0.5, help="bar above the strongest word"),
    max_texts: int | None = typer.Option(None, "--max-texts", help="use a seeded subset of the clean texts"),
    json_out: bool = typer.Option(False, "--json", help="print the scan as one JSON object"),
    output: Path | None = typer.Option(None, "--output", "-o", help="also write the scan as JSON here"),
) -> None:
    """The strongest ordinary words on the learner's insertion test, and the lowest safe bar."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from consumers.calibrate.job import CalibrationInputError, load_clean_texts
    from consumers.calibrate.learn_bar import measure_learn_bar
    from stream_guard.triggers.learn_settings import learn_rule

    try:
        rule = learn_rule()
        clean = load_clean_texts(clean_texts, max_texts=max_texts).texts
        sample = load_clean_texts(traffic).texts
    except (CalibrationInputError, ValueError) as exc:
        fail(str(exc))
    defender = build_defender(settings_from(model=model, device=device))
    scan, _ = measure_learn_bar(
        defender, clean, sample, min_texts=min_texts, exclude=exclude, max_words=max_words, margin=margin
    )
    bar, env = scan.safe_bar(margin=margin), scan.settings(rule, margin=margin)
    out = {
        "words": scan.words,
        "clean_texts": scan.clean_texts,
        "margin": margin,
        "ceiling": scan.ceiling,
        "safe_bar": bar,
        "env": env,
        "tested": [w.__dict__ for w in scan.tested],
    }
    if output is not None:
        output.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    if json_out:
        sys.stdout.buffer.write(orjson.dumps(out) + b"\n")
        return
    names = defender.classifier.label_names
    table = Table(
        title=f"{scan.words} traffic words in >= {min_texts} texts, rare in {scan.clean_texts} clean texts; "
        f"{len(scan.tested)} screened >= {scan.full_from:.0%} (the strongest 15)"
    )
    for column in ("word", "towards", "screen", "full test", "clean rate"):
        table.add_column(column)
    for w in scan.tested[:15]:
        name = names[w.target] if w.target < len(names) else str(w.target)
        rates = (f"{w.screen_rate:.0%}", f"{w.rate:.0%}", f"{w.clean_rate:.2%}")
        table.add_row(w.word, f"{w.target} {name}", *rates)
    console = Console()
    console.print(table)
    console.print(f"strongest ordinary word: {scan.ceiling:.0%}; lowest bar {margin:.0%} above it: {bar:.2f}")
    if bar > rule.min_insertion_rate:
        console.print(
            f"[bold]ordinary words reach above the learner's bar ({rule.min_insertion_rate:.2f}): "
            "if the traffic nominated them they would be learned; raise it[/bold]"
        )
    console.print("to use it: " + " ".join(f"{k}={v}" for k, v in env.items()))
