"""Send a seeded fuzz corpus through the scoring worker; every message must come out exactly once.

Starts an embedded broker and a tiny random BERT (or uses ``--bootstrap-servers`` / ``--model``), runs
`stream-guard run` as a subprocess (restarted if it ever exits: each exit counts as a crash), produces
``--messages`` fuzzed messages (:mod:`consumers.devtools.fuzz`: random bytes, invalid UTF-8, wrong
types, >1 MB values, NUL/control/RTL/zalgo text, binary and huge keys, deep metadata, valid ones in
between) and prints::

    fuzzed 100000, scored ..., dead-lettered ..., crashes 0, lost 0, duplicated 0

``tests/reliability/test_fuzz.py`` is the short version the suite runs.

Usage: python scripts/fuzz_worker.py [--messages 100000] [--seed 0] [--heavy-weight 0.1]
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
    start_worker,
    wait_joined,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--heavy-weight", type=float, default=0.1, help="weight of >1 MB values and huge keys (others: 2-20)"
    )
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest wait for every output (s)")
    parser.add_argument("--bootstrap-servers", default=None, help="a Kafka; default: an embedded Tansu")
    parser.add_argument("--model", default=None, help="a model directory; default: a tiny random BERT")
    args = parser.parse_args()

    kinds = {kind: (args.heavy_weight if kind in HEAVY_KINDS else weight) for kind, weight in KINDS.items()}
    with broker_and_model(args.bootstrap_servers, args.model) as (kafka, model_dir):
        embedded = args.bootstrap_servers is None
        topics = Topics.create(kafka, "fuzz", args.partitions)
        group = f"fuzz-{uuid.uuid4().hex[:8]}"
        log = Path(tempfile.mkdtemp(prefix="fuzz-")) / "worker.log"
        producer = Producer(kafka, topics.input)
        corpus = fuzz_messages(args.messages, args.seed, nulls=not embedded, kinds=kinds)
        feeder = threading.Thread(target=producer.send, args=(corpus,), daemon=True)
        crashes = 0
        started = time.monotonic()
        with Collector(kafka, topics) as collector:
            proc = start_worker(kafka, model_dir, topics, group, log, max_batch_size=32)
            try:
                wait_joined(proc, log, 120)
                feeder.start()
                deadline = time.monotonic() + args.timeout
                last = -1
                while time.monotonic() < deadline:
                    if proc.poll() is not None:  # the worker stopped: a crash; start another
                        crashes += 1
                        print(f"  crash {crashes}: exit {proc.returncode}", flush=True)
                        proc = start_worker(kafka, model_dir, topics, group, log, max_batch_size=32)
                    done = len(collector.outputs)
                    if done // 10_000 != last // 10_000:
                        print(f"  {done} outputs, {time.monotonic() - started:.0f} s", flush=True)
                    last = done
                    finished = not feeder.is_alive() and done >= len(producer.sent) == args.messages
                    if finished and set(producer.sent) <= collector.sources():
                        break
                    time.sleep(0.5)
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
            time.sleep(1.0)
        books = account(producer.sent, collector.outputs)
    seconds = time.monotonic() - started
    print(
        f"fuzzed {books.inputs}, scored {books.outputs - books.dead_letters}, dead-lettered"
        f" {books.dead_letters}, crashes {crashes}, lost {len(books.lost)},"
        f" duplicated {len(books.duplicated)};"
        f" last worker exit {code}; {seconds:.0f} s"
    )
    print("dead letters by error_type:", dict(books.reasons.most_common()))
    return 0 if crashes == 0 and not books.lost and not books.duplicated and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
