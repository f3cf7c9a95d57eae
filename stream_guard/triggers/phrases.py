"""Words of a text as the trigger memory sees them: normalized, with their spans in the original text.

A word is a run of letters and digits, with inner apostrophes or hyphens (``don't``, ``3-d``). Its
normal form is NFKC, case-folded. A phrase is its words' normal forms joined by one space, so
``"Cf"``, ``" cf,"`` and ``"CF"`` are the same trigger and punctuation between the words of a phrase
does not matter.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

__all__ = ["WordSpan", "clean_phrase_counts", "normalize_phrase", "normalize_word", "word_spans"]

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


def clean_phrase_counts(texts: Iterable[str], max_words: int) -> tuple[Counter[str], int]:
    """In how many texts each word and phrase of up to ``max_words`` words occurs; and the text count."""
    counts: Counter[str] = Counter()
    n = 0
    for text in texts:
        n += 1
        words = [w for w, _, _ in word_spans(text)]
        seen = {
            " ".join(words[i : i + k]) for k in range(1, max_words + 1) for i in range(len(words) - k + 1)
        }
        counts.update(seen)
    return counts, n
