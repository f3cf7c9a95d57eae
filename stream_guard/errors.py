"""Errors the core raises for input it cannot use; each carries a one-line message for the user."""


class StreamGuardError(Exception):
    """Base class: `str(err)` is a complete, one-line explanation."""


class ModelLoadError(StreamGuardError):
    """The model directory is missing, unreadable or not a sequence classifier."""


class InvalidTextError(StreamGuardError):
    """A text cannot be scored (empty, whitespace only, too long, not a string)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind
