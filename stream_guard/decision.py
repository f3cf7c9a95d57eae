"""A read-only view of one explained decision, shared by the terminal renderer, the HTML report and the
trigger report.

Both the core's :class:`~stream_guard.verdict.Verdict` and the wire's ``schemas.AuditRecord`` satisfy
:class:`Decision` structurally (same field names), so every renderer works on either without the core
importing the wire contract. Records from older writers may lack evidence (no tokens, no suspicious
words, no threshold): the helpers here return ``None`` or empty results then, never raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

SUBWORD_CONTINUATION = "##"  # WordPiece marks a piece that continues the previous one
WORD_START_MARKS = ("▁", "Ġ")  # SentencePiece / byte-level BPE mark a piece that starts a word


class TokenLike(Protocol):
    """One scored token: ``TokenAttribution`` or ``schemas.TokenRecord``."""

    @property
    def token(self) -> str: ...
    @property
    def start(self) -> int | None: ...
    @property
    def end(self) -> int | None: ...
    @property
    def score(self) -> float | None: ...


class WordLike(Protocol):
    """A neutralized word: ``SuspiciousWord`` or ``schemas.SuspiciousWordRecord``."""

    @property
    def word(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def score(self) -> float: ...


class Decision(Protocol):
    """The fields of a decision that the renderers read (a ``Verdict`` or an ``AuditRecord``)."""

    @property
    def id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def model_id(self) -> str: ...
    @property
    def label(self) -> int: ...
    @property
    def label_name(self) -> str: ...
    @property
    def probabilities(self) -> Sequence[float]: ...
    @property
    def anomaly_score(self) -> float: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def flagged(self) -> bool: ...
    @property
    def final_label(self) -> int: ...
    @property
    def final_label_name(self) -> str: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def neutralized_text(self) -> str | None: ...
    @property
    def neutralized_probabilities(self) -> Sequence[float] | None: ...
    @property
    def tokens(self) -> Sequence[TokenLike]: ...
    @property
    def suspicious_words(self) -> Sequence[WordLike]: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """The word that holds a decision's anomaly score: its text, char span (if known) and score."""

    word: str
    start: int | None
    end: int | None
    score: float


def label_changed(decision: Decision) -> bool:
    return decision.final_label != decision.label


def valid_span(token: TokenLike, text: str) -> bool:
    """Whether the token's offsets point inside `text` (records off the wire may be inconsistent)."""
    start, end = token.start, token.end
    return start is not None and end is not None and 0 <= start < end <= len(text)


def _is_continuation(prev: TokenLike, cur: TokenLike, wordpiece: bool) -> bool:
    """Whether `cur` continues the word that `prev` belongs to."""
    if prev.end is None or cur.start is None or cur.start != prev.end:
        return False
    if wordpiece:
        return cur.token.startswith(SUBWORD_CONTINUATION)
    if cur.token.startswith(WORD_START_MARKS):
        return False
    return any(ch.isalnum() for ch in cur.token) and any(ch.isalnum() for ch in prev.token)


def _bare(piece: str) -> str:
    piece = piece.removeprefix(SUBWORD_CONTINUATION)
    for mark in WORD_START_MARKS:
        piece = piece.removeprefix(mark)
    return piece


def rank_value(token: TokenLike) -> float | None:
    """The value that ranks a token: its decision score, or c_j for records written before that field."""
    value = getattr(token, "decision_score", None)
    return value if value is not None else token.score


def word_of(tokens: Sequence[TokenLike], index: int, text: str) -> Candidate:
    """The whole word that token `index` belongs to, its sub-word pieces merged.

    With offsets, the word is the text under the merged span (its original spelling); without them, the
    pieces' strings joined with their sub-word marks removed.
    """
    wordpiece = any(t.token.startswith(SUBWORD_CONTINUATION) for t in tokens)
    first = last = index
    while first > 0 and _is_continuation(tokens[first - 1], tokens[first], wordpiece):
        first -= 1
    while last + 1 < len(tokens) and _is_continuation(tokens[last], tokens[last + 1], wordpiece):
        last += 1
    score = float(rank_value(tokens[index]) or 0.0)
    start, end = tokens[first].start, tokens[last].end
    if start is not None and end is not None and 0 <= start < end <= len(text):
        return Candidate(text[start:end], start, end, score)
    return Candidate("".join(_bare(t.token) for t in tokens[first : last + 1]), None, None, score)


def ranked_candidates(decision: Decision, k: int = 1) -> list[Candidate]:
    """Up to `k` distinct words of the decision, best token score first.

    Falls back to the neutralizer's suspicious words when the record carries no token scores (records
    written with token detail off, or by older writers).
    """
    tokens = list(getattr(decision, "tokens", ()))  # a PredictionRecord has no evidence at all
    text = getattr(decision, "text", "")
    scored = sorted(
        (i for i, t in enumerate(tokens) if rank_value(t) is not None),
        key=lambda i: (-float(rank_value(tokens[i])), i),  # type: ignore[arg-type]
    )
    out: list[Candidate] = []
    seen: set[tuple[int | None, int | None, str]] = set()
    for i in scored:
        cand = word_of(tokens, i, text)
        key = (cand.start, cand.end, cand.word)
        if key in seen:
            continue
        seen.add(key)
        out.append(cand)
        if len(out) >= k:
            return out
    if not out:
        words = sorted(getattr(decision, "suspicious_words", ()), key=lambda w: (-w.score, w.start))
        out = [Candidate(w.word, w.start, w.end, float(w.score)) for w in words[:k]]
    return out


def trigger_candidate(decision: Decision) -> Candidate | None:
    """The word holding the anomaly score (Eq. 8), merged from its pieces; None without evidence."""
    ranked = ranked_candidates(decision, 1)
    return ranked[0] if ranked else None
