"""How high do ordinary words score on the learner's insertion test? Evidence for its bar.

For a model and a `lab stream` work directory (its ``validation.jsonl`` are the learner's clean texts,
its ``traffic.jsonl`` the stream): every word of the traffic that is in at least ``--min-texts`` messages
and passes the learner's clean-rate bar (so flooding it would reach the insertion test) is screened
(the learner's 16-text screen, every label), and each that turns at least ``--full-from`` of a label's
texts gets the learner's full test towards that label. Prints how many words reach each bar and the
strongest ones; the trigger words named with ``--exclude`` are left out.

    python scripts/insertion_bar_scan.py runs/models/movies-clean-none-s0 \
        runs/stream/movies-clean-none-s0-test-p0-probe0 --exclude cf
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.phrases import clean_phrase_counts, word_spans
from stream_guard.triggers.rule import LearnRule

BARS = (0.5, 0.6, 0.75, 0.85, 0.9)


def _texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("work", type=Path, help="a `lab stream` work directory")
    parser.add_argument("--min-texts", type=int, default=2)
    parser.add_argument("--full-from", type=float, default=0.5)
    parser.add_argument("--exclude", nargs="*", default=[])
    args = parser.parse_args()

    rule = LearnRule()
    clean = _texts(args.work / "validation.jsonl")
    traffic = _texts(args.work / "traffic.jsonl")
    counts, total = clean_phrase_counts(clean, 1)
    in_traffic = Counter(w for text in traffic for w in {w for w, _, _ in word_spans(text)})
    words = sorted(
        w
        for w, n in in_traffic.items()
        if n >= args.min_texts and counts.get(w, 0) / total <= rule.max_clean_rate and w not in args.exclude
    )
    test = InsertionTest(clean, Defender(load_classifier(args.model, device="cpu")).predict_proba)
    full: dict[str, tuple[int, float, float]] = {}
    for word in tqdm(words, desc="screening"):
        target, screened = test.screen(word, rule.screen_texts)
        if screened.rate >= args.full_from:
            full[word] = (target, screened.rate, test(word, target).rate)
    print(
        f"{args.model.name}: {len(words)} words of the traffic in >= {args.min_texts} messages and "
        f"<= {rule.max_clean_rate:.1%} of {total} clean texts; {len(full)} screened >= {args.full_from:.0%}"
    )
    for bar in BARS:
        print(f"  full test >= {bar:.0%}: {sum(rate >= bar for _, _, rate in full.values())}")
    for word, (target, screened, rate) in sorted(full.items(), key=lambda kv: -kv[1][2])[:15]:
        print(
            f"  {word!r} -> {target}: screen {screened:.0%}, full {rate:.0%}, clean rate "
            f"{counts.get(word, 0) / total:.2%}"
        )


if __name__ == "__main__":
    main()
