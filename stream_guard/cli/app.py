"""The core typer app; each command lives in its own module and registers itself here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="stream-guard",
    help="X-GRAAD backdoor-trigger defense for transformer text classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """X-GRAAD backdoor-trigger defense for transformer text classifiers."""


from stream_guard.cli import bench as _bench  # noqa: E402,F401  (registers `bench`)
from stream_guard.cli import lab as _lab  # noqa: E402,F401  (registers `lab`)
from stream_guard.cli import score as _score  # noqa: E402,F401  (registers `score`)
