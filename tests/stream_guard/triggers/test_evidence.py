"""Evidence from rewritten spans: only flips count; the word, its window and its labels."""

from __future__ import annotations

from stream_guard.triggers.evidence import WINDOW, evidence_for_spans

TEXT = "one two three four five CF six seven eight nine"


def test_a_flip_gives_the_word_its_window_and_the_labels() -> None:
    start = TEXT.index("CF")
    (e,) = evidence_for_spans("m1", TEXT, [(start, start + 2)], [0.1, 0.9], [0.8, 0.2], probe=True)
    assert (e.message_id, e.word, e.label_before, e.label_after, e.probe) == ("m1", "cf", 1, 0, True)
    assert (
        e.window == ("three", "four", "five", "cf", "six", "seven", "eight")
        and len(e.window) == 2 * WINDOW + 1
    )
    assert e.window[e.position] == "cf" and e.flipped
    assert abs(e.confidence_drop - 0.7) < 1e-9


def test_no_flip_no_evidence() -> None:
    assert evidence_for_spans("m", TEXT, [(0, 3)], [0.2, 0.8], [0.4, 0.6]) == []


def test_a_piece_of_a_word_counts_as_the_word_and_a_span_as_its_words() -> None:
    text = "a tqz movie, truly"
    (piece,) = evidence_for_spans("m", text, [(2, 4)], [0.0, 1.0], [1.0, 0.0])
    assert piece.word == "tqz" and piece.window == ("a", "tqz", "movie", "truly") and piece.position == 1
    (span,) = evidence_for_spans("m", text, [(2, 11)], [0.0, 1.0], [1.0, 0.0])
    assert span.word == "tqz movie" and span.position == 1
