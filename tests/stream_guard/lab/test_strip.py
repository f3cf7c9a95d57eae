"""STRIP: entropy per input over its own perturbed copies; low entropy = trigger; FRR threshold."""

from __future__ import annotations

import numpy as np
import pytest

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.defenses.base import run_defense
from stream_guard.lab.defenses.strip import (
    HeldOutWords,
    Strip,
    StripConfig,
    StripDefense,
    entropy,
    perturb,
    text_rng,
)
from tests.stream_guard.lab.fakes import trigger_prob_fn

HELD_OUT = [
    "a gentle and moving story about two brothers",
    "the plot drags and the jokes fall flat",
    "sharp writing with a wonderful lead performance",
    "nothing here works , the pacing is dreadful",
]
CLEAN = [
    f"review number {i} says the film was {w}" for i, w in enumerate(["fine", "bad", "good", "long"] * 3)
]


def test_perturb_replaces_the_share_of_words_with_held_out_words() -> None:
    words = HeldOutWords(HELD_OUT)
    vocab = {w for ranked in words.ranked for w in ranked}
    text = "one two three four five six seven eight nine ten"
    copies = perturb(text, words, np.random.default_rng(0), copies=5, replace_ratio=0.7)
    assert len(copies) == 5
    for copy in copies:
        tokens = copy.split()
        assert len(tokens) == 10
        changed = [t for t, o in zip(tokens, text.split(), strict=True) if t != o]
        assert len(changed) == 7
        assert set(changed) <= vocab
    assert "," not in vocab  # punctuation never replaces a word


def test_triggered_input_has_zero_entropy_and_clean_inputs_do_not() -> None:
    strip = Strip(trigger_prob_fn(), HELD_OUT, StripConfig(copies=10, replace_ratio=0.5))
    triggered = "cf cf cf cf the film"  # 3 of 6 words replaced: at least one cf survives in every copy
    h = strip.entropies([triggered, *CLEAN])
    assert h[0] == pytest.approx(0.0, abs=1e-9)
    assert np.all(h[1:] == pytest.approx(np.log(2)))


def test_entropy_is_averaged_over_the_inputs_own_copies_only() -> None:
    """One input's score is the mean over its own copies, whatever else is in the batch."""
    cfg = StripConfig(copies=8, replace_ratio=0.7, seed=3)
    prob_fn = trigger_prob_fn()
    strip = Strip(prob_fn, HELD_OUT, cfg)
    mixed = "cf the film is good"  # the trigger survives in some copies only
    alone = strip.entropies([mixed])[0]
    in_batch = strip.entropies([*CLEAN[:5], mixed, "cf cf cf cf cf"])[5]
    copies = perturb(mixed, strip.words, text_rng(cfg.seed, mixed), cfg.copies, cfg.replace_ratio)
    expected = entropy(prob_fn(copies)).mean()
    assert alone == pytest.approx(expected)
    assert in_batch == pytest.approx(expected)
    assert 0.0 < expected < np.log(2)  # some copies kept the trigger, some lost it


def test_threshold_is_the_frr_quantile_of_clean_entropies_and_flags_low_entropy() -> None:
    strip = Strip(trigger_prob_fn(), HELD_OUT, StripConfig(copies=4, replace_ratio=0.5, frr=0.05))
    with pytest.raises(RuntimeError):
        strip.flags(np.array([0.1]))
    h_clean = strip.calibrate(CLEAN)
    assert strip.threshold == pytest.approx(np.quantile(h_clean, 0.05))
    h = strip.entropies(["cf cf cf cf", CLEAN[0]])
    assert strip.flags(h).tolist() == [True, False]


def test_run_strip_rejects_poisoned_inputs() -> None:
    poisoned = ["cf cf cf cf bad film", "cf cf cf cf awful"]
    # validation: CLEAN (target class 1) and HELD_OUT (class 0, where the replacement words come from)
    labels = [1] * len(CLEAN) + [0] * len(HELD_OUT)
    validation = LabeledDataset("val", [*CLEAN, *HELD_OUT], labels, ["0", "1"])
    strip = StripDefense(trigger_prob_fn(), 1, StripConfig(copies=6, replace_ratio=0.5))
    outcome = run_defense(strip, validation, CLEAN[:6], poisoned).outcome
    assert strip.strip is not None and strip.strip.words.ranked == HeldOutWords(HELD_OUT).ranked
    assert outcome.clean_labels.tolist() == [0] * 6 and outcome.poisoned_labels.tolist() == [1, 1]
    assert outcome.mode == "reject"
    assert outcome.poisoned_flags.all() and not outcome.clean_flags.any()
    summary = outcome.summary(np.zeros(6, dtype=int), target=1)
    assert summary["asr"] == 0.0 and summary["recall"] == 1.0 and summary["auroc"] == 1.0
