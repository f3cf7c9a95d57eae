"""A seeded fuzz corpus of input messages: what a scoring worker must survive without stopping.

:func:`fuzz_messages` yields :class:`FuzzMessage` s (key, value, kind) drawn from the kinds in
:data:`KINDS`: random bytes, invalid UTF-8, JSON of the wrong shape or types, values over 1 MB, texts
full of NUL/control/bidi (RTL) characters or zalgo marks, null and empty values, binary keys, metadata
nested deeper than the encoder writes, keys of hundreds of kilobytes, and ordinary valid messages in
between. The same seed gives the same corpus. Every message must come out of the worker exactly once:
a prediction, an audit record or a dead letter with its reason (``tests/reliability/test_fuzz.py``,
``scripts/fuzz_worker.py``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

__all__ = ["HEAVY_KINDS", "KINDS", "NULL_KINDS", "FuzzMessage", "fuzz_messages"]

_SENTENCES = (
    "the film was a quiet delight with sharp writing and warm performances",
    "a tedious mess that never finds its footing",
    "the plot drifts but the actors hold it together until the end",
)
_WORDS = tuple(word for sentence in _SENTENCES for word in sentence.split())

KINDS: dict[str, float] = {
    "valid": 20,
    "random_bytes": 8,
    "invalid_utf8": 8,
    "not_json": 6,
    "not_object": 6,
    "wrong_types": 10,
    "missing_fields": 6,
    "control_text": 8,
    "rtl_text": 6,
    "zalgo_text": 6,
    "blank_text": 4,
    "binary_key": 6,
    "deep_metadata": 3,
    "too_deep_json": 2,
    "null_value": 2,
    "empty_value": 2,
    "huge_value": 1,
    "huge_key": 1,
}
"""Each kind with its relative weight in the corpus."""

NULL_KINDS = frozenset({"null_value", "empty_value"})
"""Kinds an embedded Tansu broker never delivers (DESIGN §3): leave them out there."""
HEAVY_KINDS = frozenset({"huge_value", "huge_key"})
"""Kinds of ~0.5–1.2 MB each."""


@dataclass(frozen=True, slots=True)
class FuzzMessage:
    """One fuzzed input message: its key and value as produced, and which kind of fuzz it is."""

    kind: str
    key: bytes | None
    value: bytes | None


def _words(rng: random.Random, low: int = 3, high: int = 12) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))


def _message(rng: random.Random, i: int, text: object, **extra: object) -> bytes:
    return orjson.dumps({"id": f"f{i}", "text": text, **extra})


def _deep(depth: int) -> bytes:
    return b'{"d":' * depth + b'"bottom"' + b"}" * depth


def _value(kind: str, rng: random.Random, i: int) -> bytes | None:
    if kind == "valid":
        return _message(rng, i, _words(rng), metadata={"n": i, "tags": ["a", "b"]})
    if kind == "random_bytes":
        return rng.randbytes(rng.randint(1, 400))
    if kind == "invalid_utf8":
        good = _message(rng, i, _words(rng))
        cut = rng.randint(1, len(good) - 1)
        return good[:cut] + rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80")) + good[cut:]
    if kind == "not_json":
        return (
            rng.choice((b"{", b"{'id': 1}", b"nul", b'{"id": "x", "text": }', b"NaN", b"[1,2"))
            + str(i).encode()
        )
    if kind == "not_object":
        return orjson.dumps(rng.choice(([f"f{i}"], i, f"text {i}", True, None, 1.5)))
    if kind == "wrong_types":
        text = rng.choice((42, None, ["a"], {"t": "x"}, True, 1e300))
        ident = rng.choice((f"f{i}", i, None, ["x"], {"a": 1}, "", "x" * 300))
        return orjson.dumps({"id": ident, "text": text if rng.random() < 0.7 else _words(rng)})
    if kind == "missing_fields":
        return orjson.dumps(
            rng.choice(({"id": f"f{i}"}, {"text": _words(rng)}, {}, {"ID": f"f{i}", "TEXT": "x"}))
        )
    if kind == "control_text":
        chars = [chr(rng.randint(0, 31)) for _ in range(rng.randint(1, 40))] + ["\x7f", "\x00"]
        rng.shuffle(chars)
        text = "".join(chars) if rng.random() < 0.5 else _words(rng) + "".join(chars) + _words(rng)
        return _message(rng, i, text)
    if kind == "rtl_text":
        marks = ("\u202e", "\u202d", "\u200f", "\u2067", "\u2069", "\u200b", "\ufeff")
        text = rng.choice(marks).join(
            rng.choice((_words(rng), "שלום עולם", "مرحبا بالعالم")) for _ in range(3)
        )
        return _message(rng, i, text)
    if kind == "zalgo_text":
        word = "".join(
            ch + "".join(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(5, 30)))
            for ch in _words(rng, 1, 4)
        )
        return _message(rng, i, word)
    if kind == "blank_text":
        return _message(rng, i, rng.choice(("", " ", "\t\n", "\u00a0\u2003")))
    if kind == "binary_key":
        return _message(rng, i, _words(rng))
    if kind == "deep_metadata":  # parses (orjson reads 1,024 levels), cannot be written back (254)
        depth = rng.randint(260, 1000)
        return b'{"id": "f%d", "text": "a fine film", "metadata": ' % i + _deep(depth) + b"}"
    if kind == "too_deep_json":  # over orjson's 1,024 levels: not JSON to it
        return b'{"id": "f%d", "text": "x", "metadata": ' % i + _deep(1100) + b"}"
    if kind == "null_value":
        return None
    if kind == "empty_value":
        return b""
    if kind == "huge_value":  # over 1 MB: valid JSON or not
        blob = "x" * rng.randint(1_000_001, 1_200_000)
        return _message(rng, i, _words(rng), metadata={"blob": blob}) if rng.random() < 0.5 else blob.encode()
    if kind == "huge_key":
        return rng.choice((b"not json", _message(rng, i, _words(rng))))
    raise ValueError(f"unknown fuzz kind {kind!r}")


def _key(kind: str, rng: random.Random, i: int) -> bytes | None:
    if kind == "binary_key":
        return rng.randbytes(rng.randint(0, 64))
    if kind == "huge_key":
        return rng.randbytes(rng.randint(400_000, 500_000))
    return None if rng.random() < 0.1 else f"k{i % 16}".encode()


def fuzz_messages(
    n: int, seed: int = 0, *, nulls: bool = True, heavy: bool = True, kinds: dict[str, float] | None = None
) -> Iterator[FuzzMessage]:
    """``n`` fuzzed messages, the same for the same arguments.

    Args:
        n: how many.
        seed: the corpus' seed.
        nulls: include null and empty values (:data:`NULL_KINDS`; a Tansu broker never delivers them).
        heavy: include values over 1 MB and keys of ~450 KB (:data:`HEAVY_KINDS`).
        kinds: the kinds to draw from with their weights (default :data:`KINDS`).
    """
    weights = dict(kinds or KINDS)
    for kind in list(weights):
        if (not nulls and kind in NULL_KINDS) or (not heavy and kind in HEAVY_KINDS):
            del weights[kind]
    names, cumulative = list(weights), list(weights.values())
    rng = random.Random(seed)
    for i in range(n):
        kind = rng.choices(names, cumulative)[0]
        yield FuzzMessage(kind, _key(kind, rng, i), _value(kind, rng, i))
