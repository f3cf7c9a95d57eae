"""The full `stream-guard` command: the core commands plus the ones that talk to Kafka."""

from __future__ import annotations

from consumers import audit_cli as _audit_cli  # noqa: F401  (registers `audit`)
from consumers import replay_cli as _replay_cli  # noqa: F401  (registers `replay`)
from stream_guard.cli import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
