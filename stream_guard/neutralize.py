"""Rewrite the suspicious words of a text so a backdoor trigger no longer matches.

Strategies: `noise` (the paper: insert or replace one or two random characters), `delete` (drop the
word), `mask` (replace it with the tokenizer's mask or unknown token). Randomness is seeded per message:
the same seed, id and text always give the same output, so a replay reproduces it.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["noise", "delete", "mask"]
STRATEGIES: tuple[Strategy, ...] = ("noise", "delete", "mask")

_NOISE_ALPHABET = string.ascii_lowercase


def message_rng(seed: int, message_id: str, text: str) -> random.Random:
    """A generator seeded by (seed, id, text): deterministic per message, independent across messages."""
    digest = hashlib.sha256(f"{seed}\x00{message_id}\x00{text}".encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def noisy_word(word: str, rng: random.Random) -> str:
    """Insert or replace 1-2 random characters at random positions (paper §4.2.2).

    Unlike the authors' code, short words are noised too, never silently deleted; the result always
    differs from the input.
    """
    chars = list(word)
    for _ in range(rng.choice((1, 2))):
        letter = rng.choice(_NOISE_ALPHABET)
        if chars and rng.random() < 0.5:
            pos = rng.randrange(len(chars))
            if chars[pos].lower() == letter:
                letter = _NOISE_ALPHABET[(_NOISE_ALPHABET.index(letter) + 1) % 26]
            chars[pos] = letter
        else:
            chars.insert(rng.randrange(len(chars) + 1), letter)
    return "".join(chars)


@dataclass(frozen=True)
class Edit:
    """A span of the input replaced by `replacement`; `new_start`/`new_end` locate it in the output."""

    start: int
    end: int
    replacement: str
    new_start: int
    new_end: int


def neutralize_spans(
    text: str,
    spans: Sequence[tuple[int, int]],
    strategy: Strategy,
    rng: random.Random,
    *,
    mask_token: str = "[UNK]",
) -> tuple[str, list[Edit]]:
    """Rewrite each (start, end) span of `text`. Overlapping spans are merged.

    Returns the new text and, per edit in text order, where it landed in the new text.
    """
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces: list[str] = []
    edits: list[Edit] = []
    cursor = 0
    length = 0
    for start, end in merged:
        kept = text[cursor:start]
        if strategy == "delete":
            # drop the word and one neighbouring space so no double space is left behind
            if end < len(text) and text[end] == " ":
                end += 1
            elif kept.endswith(" "):
                kept = kept[:-1]
            replacement = ""
        elif strategy == "mask":
            replacement = mask_token
        else:
            replacement = noisy_word(text[start:end], rng)
        pieces.append(kept)
        length += len(kept)
        edits.append(Edit(start, end, replacement, length, length + len(replacement)))
        pieces.append(replacement)
        length += len(replacement)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), edits
