"""`stream-guard demo`: options, checks and exit codes; the demo itself is :mod:`consumers.demo.run`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from consumers.calibrate.job import parse_length_edges
from consumers.cli.common import fail
from consumers.demo.run import run_demo
from stream_guard.calibration import LEARNING_SHORT_TEXT_PERCENTILE


def demo_command(
    messages: int = typer.Option(200, "--messages", "-n", help="messages to stream"),
    trigger_rate: float = typer.Option(
        0.3, "--trigger-rate", help="share of messages with the trigger inserted"
    ),
    malformed_rate: float = typer.Option(0.03, "--malformed-rate", help="share of malformed messages"),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="use this model directory (skips training)"
    ),
    bootstrap_servers: str | None = typer.Option(
        None,
        "--bootstrap-servers",
        "-b",
        help="an existing Kafka (env STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS); default: an embedded broker",
    ),
    rate: float = typer.Option(25.0, "--rate", help="messages per second to produce; 0 = all at once"),
    timeout: float = typer.Option(300.0, "--timeout", help="seconds to wait for every output"),
    calibration_texts: int = typer.Option(
        500, "--calibration-texts", help="clean validation texts to calibrate on"
    ),
    percentile: float = typer.Option(
        LEARNING_SHORT_TEXT_PERCENTILE,
        "--percentile",
        "-p",
        help="threshold percentile (99: the demo's worker learns triggers from short sentences; "
        "calibrate's default is 95)",
    ),
    length_edges: str | None = typer.Option(
        None, "--length-edges", help="token-count bucket edges, e.g. 16,32: one threshold per bucket"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the traffic sample and its order"),
    attack_after: int = typer.Option(
        30, "--attack-after", help="messages of ordinary traffic before the first triggered one"
    ),
    show: int = typer.Option(3, "--show", help="audit records kept on screen"),
) -> None:
    """Run the whole pipeline on a backdoored demo model: broker, calibration, worker, live traffic."""
    from confluent_kafka import KafkaException

    from stream_guard.errors import StreamGuardError
    from stream_guard.logs import configure_logging

    if messages < 1 or not (0 <= trigger_rate <= 1 and 0 <= malformed_rate <= 1 and 0 < percentile < 100):
        fail("need --messages >= 1, rates in [0, 1] and a percentile in (0, 100)")
    try:
        parse_length_edges(length_edges)
    except ValueError as error:
        fail(str(error))
    configure_logging(level="WARNING")  # the live view is the output; warnings and errors still show
    console = Console(highlight=False)
    try:
        code = run_demo(
            console,
            messages=messages,
            trigger_rate=trigger_rate,
            malformed_rate=malformed_rate,
            model=model,
            bootstrap_servers=bootstrap_servers,
            rate=rate,
            timeout=timeout,
            calibration_texts=calibration_texts if calibration_texts > 0 else None,
            percentile=percentile,
            length_edges=length_edges,
            seed=seed,
            show=max(0, show),
            attack_after=max(0, attack_after),
        )
    except KeyboardInterrupt:
        console.print("interrupted: stopped cleanly", style="yellow")
        raise typer.Exit(130) from None
    except KafkaException as error:
        reason = error.args[0].str() if error.args and hasattr(error.args[0], "str") else str(error)
        fail(f"Kafka at {bootstrap_servers or 'STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS'}: {reason}", code=1)
    except (StreamGuardError, ValueError, RuntimeError, TimeoutError, OSError) as error:
        fail(str(error).splitlines()[0] if str(error) else repr(error), code=1)
    raise typer.Exit(code)
