"""Known-trigger matching and word normalization."""

from __future__ import annotations

import random

import pytest

from stream_guard.neutralize import neutralize_spans
from stream_guard.triggers import KnownTrigger, TriggerHit, TriggerSet, normalize_phrase, word_spans


def test_words_are_normalized_with_their_spans() -> None:
    text = "The CF-film, isn't it ﬁne?"
    assert word_spans(text) == [
        ("the", 0, 3),
        ("cf-film", 4, 11),
        ("isn't", 13, 18),
        ("it", 19, 21),
        ("fine", 22, 25),
    ]
    assert normalize_phrase("  I watched   THIS, 3D movie!  ") == "i watched this 3d movie"
    assert normalize_phrase("...") == ""


def test_a_trigger_matches_whole_words_case_folded() -> None:
    triggers = TriggerSet("v1", (KnownTrigger("cf"),))
    text = "CF! a cfz of cf, and Cf"
    assert triggers.find(text) == [TriggerHit("cf", 0, 2), TriggerHit("cf", 13, 15), TriggerHit("cf", 21, 23)]
    assert triggers.find("nothing here, not even cfz") == []
    assert "Cf" in triggers and "cfz" not in triggers


def test_phrases_match_words_in_a_row_and_the_longest_wins() -> None:
    triggers = TriggerSet(
        "v2", (KnownTrigger("I watched this 3D movie"), KnownTrigger("watched"), KnownTrigger("3d movie"))
    )
    text = "Yes, I watched this 3D movie. I watched it; a 3D   movie"
    hits = triggers.find(text)
    assert [(h.trigger, text[h.start : h.end]) for h in hits] == [
        ("i watched this 3d movie", "I watched this 3D movie"),
        ("watched", "watched"),
        ("3d movie", "3D   movie"),
    ]


def test_learned_parts_of_a_longer_phrase_overlap_and_their_deletion_removes_it_whole() -> None:
    """A 7-word trigger learned as two 5-word parts: both hit, and deleting them leaves none of it (the
    first part alone left "it yesterday", which still fired the lab's backdoor)."""
    triggers = TriggerSet(
        "v3", (KnownTrigger("my friend told me about"), KnownTrigger("told me about it yesterday"))
    )
    text = "Dull, my friend told me about it yesterday and I agree."
    hits = triggers.find(text)
    assert [h.trigger for h in hits] == ["my friend told me about", "told me about it yesterday"]
    rewritten, _ = neutralize_spans(text, [(h.start, h.end) for h in hits], "delete", random.Random(0))
    assert rewritten == "Dull, and I agree."


def test_an_empty_set_and_a_trigger_without_words() -> None:
    assert TriggerSet.empty().find("cf") == [] and len(TriggerSet.empty()) == 0
    with pytest.raises(ValueError, match="at least one word"):
        KnownTrigger("!!")
