"""Show the cost of a second thread running torch (see stream_guard/torch_thread.py).

Scores the same short texts with the packaged backbone in one of three set-ups, each in a fresh
process, and prints texts/s for each repeat:

  main    only the main thread ever runs the model;
  both    a second, still living thread ran the model once (8 texts), then the main thread scores;
  torch   everything runs on stream-guard's torch thread (the main thread never runs the model).

Usage: python scripts/openmp_pools.py [--texts 1024] [--repeats 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def measure(setup: str, count: int, repeats: int) -> list[float]:
    from concurrent.futures import ThreadPoolExecutor

    from stream_guard.bench.texts import bench_texts
    from stream_guard.defender import Defender
    from stream_guard.loading import load_classifier
    from stream_guard.settings import DefenderSettings
    from stream_guard.torch_thread import run_on_torch_thread

    defender = Defender(load_classifier("packaged", device="cpu"), DefenderSettings(batch_size=32))
    texts = bench_texts("short", count, 0).texts

    def score_all() -> None:
        for start in range(0, len(texts), 256):
            defender.score(texts[start : start + 256])

    if setup == "torch":
        run = lambda: run_on_torch_thread(score_all)  # noqa: E731
    else:
        run = score_all
        if setup == "both":  # the other thread stays alive (a pool dies with its thread), as a
            other = ThreadPoolExecutor(1)  # worker's scoring thread did beside the main thread
            other.submit(defender.score, texts[:8]).result()
    run_on_torch_thread(defender.score, texts[:8]) if setup == "torch" else defender.score(texts[:8])
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        rates.append(len(texts) / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--setup", choices=("main", "both", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        print(" ".join(f"{r:.0f}" for r in measure(args.setup, args.texts, args.repeats)))
        return
    for setup in ("main", "both", "torch"):
        command = [sys.executable, __file__, "--setup", setup, "--texts", str(args.texts)]
        command += ["--repeats", str(args.repeats)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
        print(f"{setup:6s} texts/s: {out.splitlines()[-1]}", flush=True)


if __name__ == "__main__":
    main()
