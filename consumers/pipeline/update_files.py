"""Reading an update file (a threshold or a trigger update) with a size bound and one-line errors."""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_update_bytes"]


def read_update_bytes(path: str | Path, what: str, error: type[Exception], max_bytes: int) -> bytes:
    """The bytes of the ``what`` file (e.g. "threshold file") at ``path``; raises ``error`` with one line
    for a file that is missing, unreadable or over ``max_bytes``."""
    file = Path(path).expanduser()
    try:
        if file.stat().st_size > max_bytes:
            raise error(f"{what} {path} is over {max_bytes} bytes")
        return file.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror or err}") from None
