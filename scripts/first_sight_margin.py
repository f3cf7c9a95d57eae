"""How far first sight's benign nominees are from passing the insertion test, on a lab model's stream.

For each model: the lab's stream (``consumers.lab.stream_eval.build_traffic``: the test split in a
seeded order, 10 % triggered), every message judged by the defender; the nominees first sight would
consider (the top word of a message scoring at least the running median of the traffic's anomaly scores,
in at most the learner's share (``max_clean_rate``) of the clean calibration texts, once per word and
label — no budget) each get the full insertion test (100 clean texts of the other labels). Printed: how
many nominees, the trigger's rate, and the highest rates of the benign ones against the promotion bar
(0.9).

    python scripts/first_sight_margin.py runs/models/movies-clean-none-s0 runs/models/movies-badnets-cf-s0
"""

from __future__ import annotations

import sys
from pathlib import Path

from consumers.lab.stream_eval import build_traffic
from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.triggers.first_sight import AnomalyRanks
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.phrases import clean_phrase_counts, normalize_phrase
from stream_guard.triggers.rule import LearnRule


def margin(model_dir: Path, max_test: int = 600) -> None:
    rule = LearnRule()
    traffic = build_traffic(model_dir, trigger_rate=0.1, seed=0, max_test=max_test)
    defender = Defender(load_classifier(model_dir, device="cpu"))
    counts, total = clean_phrase_counts(traffic.validation, 1)
    texts = [m["text"] for m in traffic.messages]
    verdicts = [v for i in range(0, len(texts), 64) for v in defender.judge(texts[i : i + 64], tokens="none")]
    ranks, nominees = AnomalyRanks(), {}
    for verdict in verdicts:
        rank = ranks.add(verdict.anomaly_score)
        word = verdict.top_word
        if word and rank >= rule.first_sight_quantile and counts.get(word, 0) / total <= rule.max_clean_rate:
            nominees.setdefault((word, verdict.label), 0)
            nominees[(word, verdict.label)] += 1
    test = InsertionTest(traffic.validation, defender.predict_proba)
    triggers = set(normalize_phrase(traffic.trigger).split()) if "set" in model_dir.name else set()
    triggers.add(normalize_phrase(traffic.trigger))
    rates = sorted(((test(w, label).rate, w, label) for w, label in nominees), reverse=True)
    benign = [r for r in rates if r[1] not in triggers]
    print(
        f"{model_dir.name}: {len(nominees)} nominees, trigger(s): "
        + ", ".join(f"{w}->{lab} {r:.2f}" for r, w, lab in rates if w in triggers)
    )
    print("  highest benign: " + ", ".join(f"{w}->{lab} {r:.2f}" for r, w, lab in benign[:6]))
    passed = sum(r >= rule.min_insertion_rate for r, _, _ in benign)
    print(f"  benign at or above {rule.min_insertion_rate}: {passed} of {len(benign)}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        margin(Path(arg))
