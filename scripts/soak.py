"""Soak the scoring worker: fuzzed and valid traffic for a long time, the worker's memory sampled.

Starts an embedded broker and a tiny random BERT (or uses ``--bootstrap-servers`` / ``--model``), runs
`stream-guard run` as a subprocess and produces ``--rate`` messages a second for ``--minutes`` (half
valid, half the fuzz corpus of :mod:`consumers.devtools.fuzz`, a few >1 MB values and huge keys among
them). Every ``--sample-s`` seconds it prints the worker's resident memory (RSS); at the end the start
(first sample), end and peak RSS, the growth over the second half, and the accounting of every
message (lost, duplicated, crashes). Memory must plateau: the second half's growth stays small.

Usage: python scripts/soak.py [--minutes 30] [--rate 100] [--sample-s 60]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumers.devtools.fuzz import HEAVY_KINDS, KINDS, fuzz_messages
from tests.reliability.harness import (
    Collector,
    Producer,
    Topics,
    account,
    broker_and_model,
    rss_mib,
    start_worker,
    wait_joined,
    wait_until,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0, help="messages produced per second")
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between RSS samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap-servers", default=None, help="a Kafka; default: an embedded Tansu")
    parser.add_argument("--model", default=None, help="a model directory; default: a tiny random BERT")
    args = parser.parse_args()

    kinds = {kind: (0.05 if kind in HEAVY_KINDS else weight) for kind, weight in KINDS.items()}
    kinds["valid"] = sum(kinds.values())  # half of the traffic is valid
    with broker_and_model(args.bootstrap_servers, args.model) as (kafka, model_dir):
        embedded = args.bootstrap_servers is None
        topics = Topics.create(kafka, "soak", 2)
        group = f"soak-{uuid.uuid4().hex[:8]}"
        log = Path(tempfile.mkdtemp(prefix="soak-")) / "worker.log"
        producer = Producer(kafka, topics.input)
        corpus = fuzz_messages(10**9, args.seed, nulls=not embedded, kinds=kinds)
        stop = threading.Event()
        per_tick = max(1, round(args.rate / 10))

        def feed() -> None:
            while not stop.is_set():
                tick = time.monotonic()
                producer.send(next(corpus) for _ in range(per_tick))
                time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))

        feeder = threading.Thread(target=feed, daemon=True)
        samples: list[tuple[float, float]] = []
        crashes = 0
        with Collector(kafka, topics) as collector:
            proc = start_worker(kafka, model_dir, topics, group, log, max_batch_size=32)
            try:
                wait_joined(proc, log, 120)
                started = time.monotonic()
                feeder.start()
                end = started + args.minutes * 60
                next_sample = started + min(args.sample_s, 10.0)  # a first sample once it is warm
                while time.monotonic() < end:
                    if proc.poll() is not None:
                        crashes += 1
                        print(f"  crash {crashes}: exit {proc.returncode}", flush=True)
                        proc = start_worker(kafka, model_dir, topics, group, log, max_batch_size=32)
                    if time.monotonic() >= next_sample:
                        rss = rss_mib(proc.pid)
                        at = time.monotonic() - started
                        if rss is not None:
                            samples.append((at, rss))
                            print(
                                f"  t={at:6.0f} s  worker RSS {rss:7.1f} MiB  sent {len(producer.sent)}"
                                f"  outputs {len(collector.outputs)}",
                                flush=True,
                            )
                        next_sample += args.sample_s
                    time.sleep(0.2)
                stop.set()
                feeder.join(60)
                wanted = set(producer.sent)
                wait_until(lambda: wanted <= collector.sources(), 300)
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(60)
            finally:
                stop.set()
                if proc.poll() is None:
                    proc.kill()
            time.sleep(1.0)
        books = account(producer.sent, collector.outputs)
    rss = [value for _, value in samples]
    half = [value for at, value in samples if at >= samples[-1][0] / 2] if samples else []
    print(
        f"soak {args.minutes:g} min at {args.rate:g} msg/s: {books.line()}, crashes {crashes},"
        f" last worker exit {code}"
    )
    if rss:
        print(
            f"worker RSS start {rss[0]:.1f} MiB, end {rss[-1]:.1f} MiB, peak {max(rss):.1f} MiB;"
            f" second half {min(half):.1f}-{max(half):.1f} MiB (growth {half[-1] - half[0]:+.1f} MiB)"
        )
    return 0 if crashes == 0 and not books.lost and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
