"""Words of a text as the trigger memory sees them: normalized, with their spans in the original text.

A word is a run of letters and digits, with inner apostrophes or hyphens (``don't``, ``3-d``). Its
normal form is NFKC, case-folded. A phrase is its words' normal forms joined by one space, so
``"Cf"``, ``" cf,"`` and ``"CF"`` are the same trigger and punctuation between the words of a phrase
does not matter.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["WordSpan", "normalize_phrase", "normalize_word", "word_spans"]

_WORD = re.compile(r"\w+(?:['’\-]\w+)*")

WordSpan = tuple[str, int, int]
"""(normal form, start, end): a word of a text and its character span in that text."""


def normalize_word(word: str) -> str:
    return unicodedata.normalize("NFKC", word).casefold()


def word_spans(text: str) -> list[WordSpan]:
    """Every word of ``text`` with its span, in order."""
    return [(normalize_word(m.group()), m.start(), m.end()) for m in _WORD.finditer(text)]


def normalize_phrase(text: str) -> str:
    """The normal form of a word or phrase ("" when it has no word)."""
    return " ".join(word for word, _, _ in word_spans(text))
