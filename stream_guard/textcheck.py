"""Decide whether a text can be scored, and make it safe to tokenize without moving any character.

Control characters (other than tab, newline, carriage return) become spaces and lone surrogates become
U+FFFD, one for one, so character offsets into the cleaned text are offsets into the original.
"""

from __future__ import annotations

import re

from stream_guard.errors import InvalidTextError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: object, *, max_chars: int) -> str:
    """Return the text ready to score, or raise InvalidTextError with a one-line reason."""
    if not isinstance(text, str):
        raise InvalidTextError(f"text must be a string, got {type(text).__name__}", "validation")
    if len(text) > max_chars:
        raise InvalidTextError(f"text too long: {len(text)} characters > limit {max_chars}", "oversize")
    cleaned = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text))
    if not cleaned.strip():
        kind = "empty text" if not text else "text is only whitespace or control characters"
        raise InvalidTextError(kind, "empty_text")
    return cleaned
