"""Options shared by the commands that build a Defender, and the one way commands fail."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from pydantic import ValidationError

from consumers.pipeline.thresholds import ThresholdFileError, read_threshold_file, threshold_for_model
from consumers.pipeline.triggers import TriggerFileError, read_trigger_file, trigger_set_for_model
from schemas import ThresholdUpdate, TriggerUpdate
from stream_guard.errors import StreamGuardError
from stream_guard.logs import configure_logging
from stream_guard.settings import DefenderSettings

if TYPE_CHECKING:  # torch loads only when a command builds a defender, so --help stays fast
    from stream_guard.defender import Defender

ModelOpt = typer.Option(None, "--model", "-m", help="model directory, or 'packaged' (env STREAM_GUARD_MODEL)")
DeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda[:N] (env STREAM_GUARD_DEVICE)")
ThresholdOpt = typer.Option(None, "--threshold", "-t", help="flag texts scoring above this")
ThresholdFileOpt = typer.Option(
    None,
    "--threshold-file",
    help="a ThresholdUpdate JSON (`stream-guard calibrate --output`), applied as the worker applies it: "
    "per-length thresholds, confidence gate, version",
)
TriggersFileOpt = typer.Option(
    None,
    "--triggers",
    help="known triggers: a TriggerUpdate JSON (`triggers add --file`, `replay --triggers-out`), removed "
    "from every text that holds one, as the worker does with the triggers topic's set",
)
StrategyOpt = typer.Option(None, "--strategy", help="neutralization: noise | delete | mask")
WordsOpt = typer.Option(None, "--words-per-round", help="words neutralized per round")
RoundsOpt = typer.Option(None, "--max-rounds", help="re-score and continue while still anomalous")
MaxLengthOpt = typer.Option(None, "--max-length", help="tokens per text (longer texts are truncated)")
BatchSizeOpt = typer.Option(None, "--batch-size", help="texts per scoring batch")


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, a non-zero exit, no traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_from(**flags: Any) -> DefenderSettings:
    """Environment (`STREAM_GUARD_*`) overlaid by the flags that were given."""
    try:
        return DefenderSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as err:
        first = err.errors()[0]
        fail(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}")


def build_defender(settings: DefenderSettings) -> Defender:
    from stream_guard.defender import Defender

    configure_logging()
    try:
        return Defender.from_settings(settings)
    except (StreamGuardError, ValueError) as err:  # ValueError: a setting the core refuses
        fail(str(err).splitlines()[0] if str(err).strip() else repr(err))


def read_threshold_option(
    threshold: float | None,
    path: Path | None,
    *,
    flags: tuple[str, str] = ("--threshold", "--threshold-file"),
) -> ThresholdUpdate | None:
    """The update in the threshold file, None without one; fails (one line, exit 2) when both flags are
    given, or the file is missing or not a valid update. Read before the model loads: bad input fails fast."""
    if path is None:
        return None
    if threshold is not None:
        fail(f"give {flags[0]} or {flags[1]}, not both")
    try:
        return read_threshold_file(path)
    except ThresholdFileError as err:
        fail(str(err))


def apply_threshold_update(
    defender: Defender, update: ThresholdUpdate | None, path: Path | None, *, flag: str = "--threshold"
) -> None:
    """Judge with the update exactly as the worker's threshold listener applies one
    (``defender.set_threshold(threshold_from_update(update))``); the update must name the loaded model."""
    if update is None:
        return
    try:
        threshold = threshold_for_model(update, defender.model_id, source=f"threshold file {path}")
    except ThresholdFileError as err:
        fail(f"{err} (give {flag} VALUE to use a plain threshold with this model)")
    defender.set_threshold(threshold)


def read_triggers_option(path: Path | None) -> TriggerUpdate | None:
    """The update in the ``--triggers`` file, None without one; fails (one line, exit 2) when the file is
    missing or not a valid update. Read before the model loads: bad input fails fast."""
    if path is None:
        return None
    try:
        return read_trigger_file(path)
    except TriggerFileError as err:
        fail(str(err))


def apply_trigger_update(defender: Defender, update: TriggerUpdate | None, path: Path | None) -> None:
    """Judge with the update's known triggers exactly as the worker applies a set from the triggers topic
    (``defender.set_triggers(trigger_set_from_update(update))``); the update must name the loaded model.
    Call it after any threshold is set."""
    if update is None:
        return
    try:
        defender.set_triggers(trigger_set_for_model(update, defender.model_id, source=f"trigger file {path}"))
    except TriggerFileError as err:
        fail(str(err))
