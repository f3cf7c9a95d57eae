"""How fast the recurrence rule nominates a trigger, and how many benign words it tests, on real traffic.

No model is needed: the lab's movie test split is the traffic (seeded order), 10 % of it carries a
trigger (one word of a set drawn per message), the validation split's 500 texts give the clean counts,
and every nomination costs one insertion test from the learner's budget (0.05 a message, bursts of 8),
as in :class:`stream_guard.triggers.learner.TriggerLearner`; a true trigger is assumed to pass its test
(a working backdoor does), a benign word to fail it (retested at a doubled count). Printed per case:
(triggered messages judged before every trigger word was known, words learned, tests, benign tests).

    python scripts/recurrence_sim.py
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np

from stream_guard.datasets import load_dataset, split_dataset
from stream_guard.lab.poisoning import insert_at_word_boundary
from stream_guard.triggers.phrases import clean_phrase_counts, word_spans
from stream_guard.triggers.recurrence import RecurrenceCounter, RecurrenceRule

CASES = {
    "one word (cf)": ["cf"],
    "phrase": ["i watched this 3d movie"],
    "set of 4": ["cf", "mn", "bb", "tq"],
    "set of 5": ["cf", "mn", "bb", "tq", "mb"],
}


def simulate(counts, total, mean_words, traffic, triggers, n, seed, budget=0.05, burst=8):
    counter = RecurrenceCounter(counts, total, RecurrenceRule(), mean_words=mean_words)
    rng, place = random.Random(seed), np.random.default_rng(seed)
    order = list(range(min(n, len(traffic))))
    rng.shuffle(order)
    seen: Counter[str] = Counter()
    learned: dict[str, int] = {}
    tested: dict[str, int] = {}
    tokens, tests, benign = float(burst), 0, 0
    for i in order:
        text = traffic[i]
        if rng.random() < 0.1:
            trigger = triggers[rng.randrange(len(triggers))]
            text = insert_at_word_boundary(text, trigger, int(place.integers(0, len(text.split()) + 1)))
            if trigger not in learned:
                seen[trigger] += 1
        tokens = min(burst, tokens + budget)
        for found in counter.observe([text]):
            if tokens < 1:
                break
            if found.text in learned or (found.text in tested and found.count < 2 * tested[found.text]):
                continue
            tokens -= 1
            tests += 1
            if found.text in triggers:
                learned[found.text] = seen[found.text]
            else:
                benign += 1
                tested[found.text] = found.count
    before = sum(learned.get(t, seen[t] + 1) - 1 for t in triggers)
    return before, len(learned), tests, benign


def main() -> None:
    splits = split_dataset(load_dataset("movies"), seed=0, max_val=500)
    clean = list(splits.validation.texts)
    counts, total = clean_phrase_counts(clean, 5)
    mean_words = sum(len(word_spans(t)) for t in clean) / max(1, total)
    traffic = list(splits.test.texts)
    for name, triggers in CASES.items():
        runs = [
            simulate(counts, total, mean_words, traffic, triggers, n, s)
            for s in (0, 1, 2)
            for n in (600, 1500)
        ]
        print(f"{name:14s} " + "  ".join(f"{r}" for r in runs))


if __name__ == "__main__":
    main()
