"""The full `stream-guard` command: the core commands plus the ones that talk to Kafka."""

from __future__ import annotations

from stream_guard.cli import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
