"""The full `stream-guard` command: the core commands plus the ones that talk to Kafka."""

from __future__ import annotations

import typer

from consumers.bench import pipeline_runner as _bench_pipeline  # noqa: F401  (the bench's pipeline runner)
from consumers.cli import audit as _audit_cli  # noqa: F401  (registers `audit`)
from consumers.cli import calibrate as calibrate_cli
from consumers.cli import replay as _replay_cli  # noqa: F401  (registers `replay`)
from consumers.cli import run as _run_cli  # noqa: F401  (registers `run`)
from consumers.demo import run as demo
from stream_guard.cli import app

app.command("calibrate")(calibrate_cli.calibrate_command)
app.command("demo")(demo.demo_command)


@app.command("broker")
def broker_command(
    port: int | None = typer.Option(None, "--port", "-p", help="TCP port (default: a free one)"),
) -> None:
    """Run an embedded, in-memory Kafka-protocol broker (Tansu) in the foreground until Ctrl-C."""
    from consumers.devtools.broker import run_broker

    raise typer.Exit(run_broker(port))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
