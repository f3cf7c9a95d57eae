"""The neutralize rounds' stopping rule and the offsets of the words they rewrite."""

from __future__ import annotations

import numpy as np
import pytest

from stream_guard.encoding import EncodedText
from stream_guard.model_runner import ModelRunner
from stream_guard.neutralize_rounds import FlaggedText, keep_going, neutralize_flagged
from stream_guard.scores import TextScores
from stream_guard.settings import DefenderSettings


def _scores(label: int, anomaly: float, *, candidates: bool = True) -> TextScores:
    encoded = EncodedText(ids=[1], offsets=[(0, 1)], word_ids=[0], tokens=["a"], truncated=False)
    probabilities = np.array([0.9, 0.1]) if label == 0 else np.array([0.1, 0.9])
    one = np.array([anomaly])
    return TextScores(encoded, probabilities, one, one, one, np.array([candidates]), anomaly, one)


ORIGINAL = _scores(0, 5.0)


@pytest.mark.parametrize(
    ("current", "rule", "expected"),
    [
        (_scores(0, 2.0), "anomalous", True),  # still above the limit (1.0)
        (_scores(0, 0.5), "anomalous", False),
        (_scores(0, 0.5), "unchanged", True),  # the label has not moved
        (_scores(1, 2.0), "unchanged", False),
        (_scores(0, 2.0), "anomalous_unchanged", True),
        (_scores(1, 2.0), "anomalous_unchanged", False),
        (_scores(0, 0.5), "anomalous_unchanged", False),
        (_scores(0, 2.0, candidates=False), "anomalous", False),  # nothing left to rewrite
    ],
)
def test_keep_going_follows_the_rule(current, rule, expected):
    assert keep_going(ORIGINAL, current, 1.0, rule) is expected


def test_words_of_later_rounds_are_located_in_the_original_text(tiny_bert):
    runner = ModelRunner(tiny_bert)
    settings = DefenderSettings.paper(strategy="delete", max_rounds=3, continue_while="unchanged")
    text = "the film is charming cf and funny"
    (scores,) = runner.score(runner.encode([text]), settings)
    (done,) = neutralize_flagged({7: FlaggedText("m", text, scores, None)}, runner, settings).values()
    assert len(done.words) >= 2  # a deleted word shifts the later rounds' offsets
    assert [w.iteration for w in done.words] == list(range(len(done.words)))
    for word in done.words:
        assert text[word.start : word.end] == word.word
        assert word.word not in done.text.split()
