"""`stream-guard score`: judge texts given on the command line or in a JSONL file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import typer
from rich.console import Console

from consumers.cli.common import (
    BatchSizeOpt,
    DeviceOpt,
    MaxLengthOpt,
    ModelOpt,
    RoundsOpt,
    StrategyOpt,
    ThresholdFileOpt,
    ThresholdOpt,
    TriggersFileOpt,
    WordsOpt,
    apply_threshold_update,
    apply_trigger_update,
    build_defender,
    fail,
    read_threshold_option,
    read_triggers_option,
    settings_from,
)
from stream_guard.errors import InvalidTextError, StreamGuardError
from stream_guard.records import RecordError, TextRecord, read_jsonl
from stream_guard.render import render_verdict
from stream_guard.verdict import Verdict


def _records(texts: list[str], input_path: str | None) -> Iterator[TextRecord | RecordError]:
    for i, text in enumerate(texts):
        yield TextRecord(str(i), text, i + 1, {})
    if input_path is not None:
        yield from read_jsonl(input_path)


def verdict_json(verdict: Verdict) -> bytes:
    return orjson.dumps(verdict.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)


def error_json(record: RecordError) -> bytes:
    return orjson.dumps({"id": record.id, "line": record.line, "error": record.reason})


def score_command(
    texts: list[str] = typer.Argument(None, help="texts to judge"),
    input_path: str | None = typer.Option(
        None, "--input", "-i", help="JSONL file of {id, text} records; - for stdin"
    ),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per text, one per line"),
    model: str | None = ModelOpt,
    threshold: float | None = ThresholdOpt,
    threshold_file: Path | None = ThresholdFileOpt,
    triggers_file: Path | None = TriggersFileOpt,
    device: str | None = DeviceOpt,
    strategy: str | None = StrategyOpt,
    words_per_round: int | None = WordsOpt,
    max_rounds: int | None = RoundsOpt,
    max_length: int | None = MaxLengthOpt,
    batch_size: int | None = BatchSizeOpt,
) -> None:
    """Score texts with X-GRAAD, flag them against the threshold and neutralize flagged ones."""
    if not texts and input_path is None:
        fail("give texts as arguments or --input FILE.jsonl (- for stdin)")
    if input_path not in (None, "-") and not Path(input_path).is_file():
        fail(f"input file not found: {input_path}")
    update = read_threshold_option(threshold, threshold_file)
    triggers = read_triggers_option(triggers_file)
    settings = settings_from(
        model=model,
        threshold=threshold,
        device=device,
        strategy=strategy,
        words_per_round=words_per_round,
        max_rounds=max_rounds,
        max_length=max_length,
        batch_size=batch_size,
    )
    defender = build_defender(settings)
    apply_threshold_update(defender, update, threshold_file)
    apply_trigger_update(defender, triggers, triggers_file)
    batch = 8 * settings.batch_size
    console = Console(highlight=False)
    out = sys.stdout.buffer
    pending: list[TextRecord] = []

    def flush() -> None:
        if not pending:
            return
        for verdict in defender.judge([r.text for r in pending], [r.id for r in pending]):
            if json_out:
                out.write(verdict_json(verdict) + b"\n")
            else:
                console.print(render_verdict(verdict))
        out.flush()
        pending.clear()

    try:
        for record in _records(texts or [], input_path):
            if isinstance(record, TextRecord):
                try:
                    cleaned = defender.clean(record.text)
                except InvalidTextError as err:
                    record = RecordError(record.line, str(err), record.id)
                else:
                    pending.append(TextRecord(record.id, cleaned, record.line, record.extra))
            if isinstance(record, RecordError):
                flush()  # keep output in input order
                if json_out:
                    out.write(error_json(record) + b"\n")
                else:
                    console.print(f"[red]error[/red] line {record.line} id={record.id}: {record.reason}")
            elif len(pending) >= batch:
                flush()
        flush()
    except StreamGuardError as err:
        fail(str(err))
