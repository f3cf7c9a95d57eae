"""`stream-guard triggers check WORD…`: would the learner learn these words on this model?

Runs the learner's insertion test and clean-rate bar (:mod:`stream_guard.triggers.check`) on the
model and clean texts given, under the learner's rule (``STREAM_GUARD_LEARN_*``), and prints one row
per word and label. Before ``triggers add``: is the word a backdoor trigger of this model? After a
learned word looks wrong: how far above the bar was it? Nothing is published.
"""

from __future__ import annotations

import sys

import typer

from consumers.cli.common import DeviceOpt, ModelOpt, build_defender, fail, settings_from


def check_command(
    words: list[str] = typer.Argument(..., help="words or phrases to test (each is case-folded)"),
    clean_texts: str = typer.Option(
        ...,
        "--clean-texts",
        help="clean texts to insert into, as the learner's (a lab dataset's validation split or a file)",
    ),
    model: str | None = ModelOpt,
    device: str | None = DeviceOpt,
    target_label: int | None = typer.Option(None, "--target-label", help="test towards this label only"),
    max_texts: int | None = typer.Option(None, "--max-texts", help="use a seeded subset of the clean texts"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object per word and label"),
) -> None:
    """Would the learner learn these words? Its insertion test and clean-rate bar, on demand."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from consumers.calibrate.job import CalibrationInputError, load_clean_texts
    from stream_guard.triggers.check import check_candidates
    from stream_guard.triggers.insertion import InsertionTest
    from stream_guard.triggers.learn_settings import learn_rule

    try:
        rule = learn_rule()
        texts = load_clean_texts(clean_texts, max_texts=max_texts).texts
    except (CalibrationInputError, ValueError) as exc:
        fail(str(exc))
    defender = build_defender(settings_from(model=model, device=device))
    labels = defender.classifier.num_labels
    if target_label is not None and not 0 <= target_label < labels:
        fail(f"--target-label must be a label of the model (0..{labels - 1}), got {target_label}")
    test = InsertionTest(texts, defender.predict_proba)
    targets = [target_label] if target_label is not None else list(range(labels))
    try:
        checks = check_candidates(test, words, rule, targets=targets)
    except ValueError as exc:
        fail(str(exc))
    if json_out:
        for c in checks:
            sys.stdout.buffer.write(orjson.dumps(c.to_dict()) + b"\n")
        return
    names = defender.classifier.label_names
    table = Table(title=f"insertion test on {len(texts)} clean texts ({clean_texts})")
    for column in ("word or phrase", "towards", "turned", "clean rate", "verdict"):
        table.add_column(column)
    for c in checks:
        name = names[c.target] if c.target < len(names) else str(c.target)
        turned = f"{c.insertion.flipped}/{c.insertion.eligible} ({c.insertion.rate:.0%})"
        table.add_row(c.text, f"{c.target} {name}", turned, f"{c.clean_rate:.2%}", c.verdict)
    Console().print(table)
