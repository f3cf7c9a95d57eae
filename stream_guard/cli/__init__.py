"""The Kafka-free commands of `stream-guard` (score, lab, bench). `consumers.cli.main` mounts them."""

from stream_guard.cli.app import app

__all__ = ["app"]
