"""`stream-guard broker`: an embedded Kafka-protocol broker (Tansu) for trying the app without Kafka."""

from __future__ import annotations

import typer


def broker_command(
    port: int | None = typer.Option(None, "--port", "-p", help="TCP port (default: a free one)"),
) -> None:
    """Run an embedded, in-memory Kafka-protocol broker (Tansu) in the foreground until Ctrl-C."""
    from consumers.devtools.broker import run_broker

    raise typer.Exit(run_broker(port))
