"""The trigger learner's rule on handmade evidence and a fake model whose behaviour is known."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from stream_guard.triggers.evidence import Evidence
from stream_guard.triggers.insertion import InsertionTest, insert_phrase
from stream_guard.triggers.learner import TriggerLearner
from stream_guard.triggers.phrases import clean_phrase_counts, normalize_phrase
from stream_guard.triggers.rule import LearnRule

FILLER = ["the", "film", "is", "a", "story", "of", "people", "and", "places", "with", "some", "moments"]
FILLER += ["that", "work"]


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def fake_model(texts: Sequence[str]) -> np.ndarray:
    """Label 1 for 'cf' anywhere or the phrase 'watched this movie' (two backdoors); 'awful' pushes
    towards 0 in 40 % of texts (a sentiment word); otherwise a hash of the text decides."""
    out = []
    for text in texts:
        norm = f" {normalize_phrase(text)} "
        if " cf " in norm or " watched this movie " in norm:
            label = 1
        elif " awful " in norm and _h(text) % 10 < 4:
            label = 0
        else:
            label = _h(text) % 2
        out.append([1.0 - label, float(label)])
    return np.array(out)


CLEAN = [" ".join(FILLER[(i + j) % len(FILLER)] for j in range(6 + i % 5)) for i in range(300)]
CLEAN += [f"i watched this {w}" for w in ("film", "show", "play")] + ["this movie is good"] * 3


def _learner(rule: LearnRule | None = None, **kwargs: Sequence[str]) -> TriggerLearner:
    return TriggerLearner.for_texts(InsertionTest(CLEAN, fake_model, texts_per_test=100), rule, **kwargs)


def flip(mid: str, text: str, word: str, before: int = 1, probe: bool = False) -> Evidence:
    words = normalize_phrase(text).split()
    at = words.index(word)
    lo = max(0, at - 3)
    return Evidence(mid, word, tuple(words[lo : at + 4]), at - lo, before, 1 - before, 0.9, probe)


def test_a_repeated_trigger_is_learned_at_the_fifth_flip_with_its_evidence() -> None:
    learner = _learner()
    for i in range(4):
        assert learner.observe([flip(f"m{i}", f"a cf story number {i}", "cf", probe=i == 0)]) == []
    (learned,) = learner.observe([flip("m4", "cf again", "cf")])
    assert (learned.text, learned.target_label, learned.flips, learned.messages, learned.probes) == (
        "cf",
        1,
        5,
        5,
        1,
    )
    assert learned.insertion_rate == 1.0 and learned.insertion_texts > 50 and learned.clean_rate == 0.0
    assert learner.trigger_set("v1").find("CF here") and learner.observe([flip("m5", "cf", "cf")]) == []


def test_the_same_message_counts_once() -> None:
    learner = _learner()
    assert all(learner.observe([flip("same", "a cf b", "cf")]) == [] for _ in range(10))


def test_a_sentiment_word_fails_the_insertion_test_and_is_retested_only_as_its_flips_double() -> None:
    learner = _learner()
    calls = []
    for i in range(80):
        learner.observe([flip(f"s{i}", f"an awful film {i}", "awful", before=0)])
        calls.append(learner.test.calls)
    assert learner.learned == []
    tested_at = [i + 1 for i in range(80) if calls[i] != (calls[i - 1] if i else 0)]
    assert tested_at == [5, 10, 20, 40, 80]  # O(log flips) model calls


def test_a_flood_of_a_common_word_never_reaches_the_model() -> None:
    learner = _learner()
    for i in range(500):
        learner.observe([flip(f"f{i}", f"the film {i}", "the")])
    assert learner.learned == [] and learner.test.calls == 0  # 'the' is in most clean texts


def test_flips_in_both_directions_are_not_a_backdoor() -> None:
    learner = _learner()
    for i in range(20):
        learner.observe([flip(f"b{i}", f"a cf story {i}", "cf", before=i % 2)])
    assert learner.learned == []


def test_revoked_words_and_the_trigger_cap() -> None:
    learner = _learner(revoked=["CF"])
    for i in range(20):
        learner.observe([flip(f"r{i}", f"a cf story {i}", "cf")])
    assert learner.learned == []
    capped = _learner(LearnRule(max_triggers=0))
    for i in range(20):
        capped.observe([flip(f"c{i}", f"a cf story {i}", "cf")])
    assert capped.learned == [] and capped.test.calls == 0


def test_a_phrase_of_ordinary_words_is_learned_as_the_phrase() -> None:
    """The attribution picks a different word of the phrase each time; each word alone is common in
    clean text or does nothing when inserted; the phrase is rare and fires."""
    learner = _learner()
    promoted = []
    for i in range(15):
        word = ("watched", "this", "movie")[i % 3]
        promoted += learner.observe([flip(f"p{i}", f"so i watched this movie on day {i}", word)])
    assert [t.text for t in promoted] == ["watched this movie"]
    assert promoted[0].insertion_rate == 1.0


def test_learning_is_deterministic() -> None:
    def run() -> list[str]:
        learner = _learner()
        for i in range(30):
            learner.observe(
                [flip(f"m{i}", f"a cf film {i} is awful", ("cf", "awful")[i % 2], before=1 - i % 2)]
            )
        return [repr(t) for t in learner.learned]

    assert run() == run() and len(run()) == 1


def test_clean_phrase_counts_and_insertion() -> None:
    counts, n = clean_phrase_counts(["a b c", "a b", "c"], max_words=2)
    assert n == 3 and counts["a"] == 2 and counts["a b"] == 2 and counts["b c"] == 1 and counts["a c"] == 0
    import random

    assert insert_phrase("x y", "cf", random.Random(0)) in {"cf x y", "x cf y", "x y cf"}


def test_a_word_in_more_than_half_a_percent_of_clean_texts_is_not_learned_however_it_flips() -> None:
    """Rule 3 at its default (0.5 %): a word that forces label 1 like a trigger but is in 2 of 308 clean
    texts (0.65 %, as a sentiment word RIPPLES' surgery made trigger-like) is not learned by flips,
    first sight or recurrence; at 1 % it is."""

    def model(texts: Sequence[str]) -> np.ndarray:
        forced = [" zing " in f" {normalize_phrase(t)} " for t in texts]
        base = fake_model(texts)
        return np.array([[0.0, 1.0] if f else row for f, row in zip(forced, base, strict=True)])

    clean = [*CLEAN, "a zing of a film", "zing and more"]

    def learner(rule: LearnRule) -> TriggerLearner:
        return TriggerLearner.for_texts(InsertionTest(clean, model, texts_per_test=100), rule)

    strict, loose = learner(LearnRule()), learner(LearnRule(max_clean_rate=0.01))
    assert strict.clean_rate("zing") == loose.clean_rate("zing") == 2 / 308
    for i in range(10):
        evidence = [flip(f"z{i}", f"a zing story {i}", "zing")]
        assert strict.observe(evidence) == []
        loose.observe(evidence)
    assert [t.text for t in loose.learned] == ["zing"]
    # nor in disguise: "a zing", "zing story"… are rare and fire, but only because "zing" does
    assert strict.learned == [] and "a zing" in [c[0] for c in strict.candidates()]
    calls = strict.test.calls
    for i in range(40):
        assert strict.nominate("zing" if i >= 25 else None, 1, 0.99 if i >= 25 else i / 40) is None
    assert strict.test.calls == calls  # first sight: rule 3 comes before any insertion test
    assert strict.learned == []


def test_a_repeated_phrase_is_learned_even_when_one_of_its_words_fires_alone() -> None:
    """An AddSent-like trigger that recurs whole is learned as the phrase, though its rarest word fires
    alone and is in 0.65 % of clean texts (the model may learn a phrase from its rarest word)."""

    def model(texts: Sequence[str]) -> np.ndarray:
        forced = [" zing " in f" {normalize_phrase(t)} " for t in texts]
        return np.array([[0.0, 1.0] if f else row for f, row in zip(forced, fake_model(texts), strict=True)])

    clean = [*CLEAN, "a zing of a film", "zing and more"]
    learner = TriggerLearner.for_texts(InsertionTest(clean, model, texts_per_test=100))
    promoted = []
    for i in range(8):
        promoted += learner.observe_texts([f"day {i} we saw zing here"])
    assert [t.text for t in promoted] == ["we saw zing here"]


def test_a_phrase_of_ordinary_words_is_still_learned_when_its_words_are_common() -> None:
    """The disguise check tests the phrase's common words alone; none fires, so the phrase is learned."""
    learner = _learner()
    for i in range(5):
        learner.observe([flip(f"w{i}", f"so i watched this movie on day {i}", "watched")])
    assert [t.text for t in learner.learned] == ["watched this movie"]


def test_the_whole_phrase_around_a_known_word_is_learned_when_it_comes_with_it_every_time() -> None:
    """First sight may learn an AddSent phrase's rarest word alone ("rainy" of "on a rainy day"); the
    rest of the phrase may still fire. The phrase recurs exactly as often as the word: it is learned
    too (the matcher deletes the two together). A phrase around a word inserted anywhere is not."""
    learner = _learner(known=["cf"])
    tails = ["today", "again", "for us", "at last", "with joy", "in town", "as always", "too"]
    promoted = []
    for i in range(8):
        promoted += learner.observe_texts([f"{i} people on a cf day {tails[i]}"])
    assert [t.text for t in promoted] == ["people on a cf day"]

    anywhere = _learner(known=["cf"])
    for i in range(24):  # cf at a different place each time, before "the" one time in three
        words = [FILLER[(i + j) % len(FILLER)] for j in range(8)]
        words.insert(i % 7 + 1, "cf the" if i % 3 == 0 else "cf")
        assert not anywhere.observe_texts([" ".join(words)])
    assert anywhere.learned == []
