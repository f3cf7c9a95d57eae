"""Measure the fixed cost of one model call in padded tokens (`call_cost_tokens`, stream_guard/batch_plan).

Times forward-only classification and X-GRAAD's forward+backward on padded batches of several shapes,
fits ``seconds = fixed + per_token × padded tokens`` by least squares, and prints ``fixed / per_token``:
the padding one extra call is worth. Then it times both kinds of call on the batches that
`plan_batches` makes of the benchmark's short texts in the worker's chunks of 256 (all of them; and a
random 23 % of each chunk, the share the defense re-classifies at the 80th percentile) with the
default call cost, with none (fewest batches) and with the given alternatives.

Usage: python scripts/call_cost.py [--model packaged] [--device cpu] [--repeats 4] [--alternatives 24,96]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stream_guard.attribution import attribute, classify
from stream_guard.batch_plan import plan_batches, resolve_call_cost
from stream_guard.bench.texts import bench_texts
from stream_guard.encoding import EncodedText, encode_texts, pad_batch
from stream_guard.loading import LoadedClassifier, load_classifier

# small batches: the fixed part is a few ms, below the noise of a large batch's per-token time
SHAPES = [(1, 8), (2, 8), (1, 32), (4, 16), (8, 16), (4, 64), (8, 32), (16, 32)]


def call(classifier: LoadedClassifier, kind: str, ids: torch.Tensor, mask: torch.Tensor) -> None:
    if kind == "forward":
        classify(classifier.model, ids, mask)
    else:
        attribute(classifier.model, ids, mask, mask.bool())
    if ids.device.type == "cuda":
        torch.cuda.synchronize(ids.device)


def fit_call_cost(classifier: LoadedClassifier, kind: str, repeats: int) -> tuple[float, float]:
    """(fixed seconds, seconds per padded token) of one call of `kind`."""
    tokens, seconds = [], []
    for batch, length in SHAPES:
        ids = torch.randint(1000, 2000, (batch, length), device=classifier.device)
        mask = torch.ones_like(ids)
        for _ in range(2):
            call(classifier, kind, ids, mask)
        start = time.perf_counter()
        for _ in range(repeats * 10):
            call(classifier, kind, ids, mask)
        tokens.append(batch * length)
        seconds.append((time.perf_counter() - start) / (repeats * 10))
    per_token, fixed = np.polyfit(tokens, seconds, 1)
    return float(fixed), float(per_token)


def planned_seconds(
    classifier: LoadedClassifier,
    kind: str,
    chunks: list[list[EncodedText]],
    call_cost: int | None,
    repeats: int,
) -> tuple[int, int, float]:
    """(batches, padded tokens, best seconds of `repeats`) of `kind` calls over each chunk's plan."""
    batches = []
    for chunk in chunks:
        plan = plan_batches([len(e) for e in chunk], batch_size=32, call_cost=call_cost)
        batches.extend(pad_batch([chunk[i] for i in b], 0, classifier.device) for b in plan)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for ids, mask in batches:
            call(classifier, kind, ids, mask)
        best = min(best, time.perf_counter() - start)
    return len(batches), sum(int(ids.numel()) for ids, _ in batches), best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="packaged")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--alternatives", default="24,96", help="other call costs to time the plans with")
    args = parser.parse_args()
    classifier = load_classifier(args.model, device=args.device)
    for kind in ("forward", "forward+backward"):
        fixed, per_token = fit_call_cost(classifier, kind, args.repeats)
        print(
            f"{kind:17s} fixed {1000 * fixed:6.2f} ms  per token {1e6 * per_token:7.2f} µs"
            f"  -> a call costs {fixed / per_token:5.0f} padded tokens"
        )
    default = resolve_call_cost(None, classifier.device)
    costs = [default, None, *(int(x) for x in args.alternatives.split(",") if x)]
    texts = bench_texts("short", args.texts, 0).texts
    encoded = encode_texts(classifier.tokenizer, texts, classifier.max_length)
    rng = np.random.default_rng(0)
    chunks = [encoded[start : start + 256] for start in range(0, len(encoded), 256)]
    rewrites = [[e for e in chunk if rng.random() < 0.23] for chunk in chunks]
    for kind, label, subset in (
        ("forward+backward", "scoring", chunks),
        ("forward", "re-classify", rewrites),
    ):
        count = sum(len(chunk) for chunk in subset)
        for cost in dict.fromkeys(costs):
            batches, padded, seconds = planned_seconds(classifier, kind, subset, cost, args.repeats)
            name = "fewest batches" if cost is None else f"call cost {cost}"
            print(
                f"{label:11s} {count:5d} texts  {name:15s} {batches:3d} batches"
                f"  {padded:6d} padded tokens  {seconds:6.3f} s"
            )


if __name__ == "__main__":
    main()
