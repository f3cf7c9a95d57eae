"""The texts the benchmark scores: short (SST-like movie sentences) and long (email-like).

Short texts are the lab's ``movies`` sentences and long texts its ``spam`` emails (both shipped in the
package). Where the lab's loader is unavailable, built-in sentences and synthetic emails stand in, so the
benchmark always runs; the name of the source says which was used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

TextKind = Literal["short", "long"]
TEXT_KINDS: tuple[TextKind, ...] = ("short", "long")

_DATASET = {"short": "movies", "long": "spam"}

_FALLBACK_SENTENCES = (
    "a charming, funny and quietly moving film",
    "the plot drags and the jokes never land",
    "an utterly tedious mess with a few good moments",
    "one of the most thoughtful dramas of the year",
    "the actors do what they can with a thin script",
    "visually stunning but emotionally hollow",
    "a smart , sharp and surprisingly tender comedy",
    "it is hard to care about any of these people",
)
_FALLBACK_WORDS = ("offer", "free", "account", "update", "review", "money", "click", "team", "invoice")


@dataclass(frozen=True)
class BenchTexts:
    """Texts of one kind and where they came from (`movies`, `spam` or `built-in`)."""

    kind: TextKind
    source: str
    texts: list[str]


def bench_texts(kind: TextKind, count: int, seed: int = 0) -> BenchTexts:
    """`count` texts of `kind`, a seeded sample (the same texts on every run with the same seed)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    rng = random.Random(seed)
    try:
        from stream_guard.datasets import load_dataset

        pool = [t for t in load_dataset(_DATASET[kind]).texts if t.strip()]
        source = _DATASET[kind]
    except (ImportError, ValueError, OSError):
        pool, source = _fallback(kind, max(count, 64), rng), "built-in"
    picked = [pool[i] for i in rng.sample(range(len(pool)), min(count, len(pool)))]
    distinct = len(picked)
    while len(picked) < count:  # fewer texts than asked: cycle through them
        picked.append(picked[len(picked) % distinct])
    return BenchTexts(kind, source, picked)


def _fallback(kind: TextKind, count: int, rng: random.Random) -> list[str]:
    if kind == "short":
        return [_FALLBACK_SENTENCES[i % len(_FALLBACK_SENTENCES)] for i in range(count)]
    return [
        "Subject: "
        + " ".join(rng.choices(_FALLBACK_WORDS, k=6))
        + "\n"
        + " ".join(rng.choices(_FALLBACK_WORDS, k=180))
        for _ in range(count)
    ]
