"""SIGKILL the scoring worker again and again under load; count lost and duplicated outputs.

Starts an embedded broker and a tiny random BERT (or uses ``--bootstrap-servers`` / ``--model``), runs
`stream-guard run` as a subprocess, produces ``--messages`` fuzzed and valid messages at a steady rate,
and SIGKILLs the worker ``--kills`` times at random moments once it is working, restarting it each time.
Then it waits until every input has an output, stops the worker with SIGTERM and prints::

    SIGKILLs 10, messages 3000, lost 0, duplicated 0 (at-least-once: duplicates are allowed ...)

The README promises at-least-once: nothing lost; after a SIGKILL at most the uncommitted batch is
produced again. ``tests/reliability/test_sigkill.py`` is the short version the suite runs.

Usage: python scripts/sigkill_loop.py [--kills 40] [--messages 6000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumers.devtools.fuzz import fuzz_messages
from tests.reliability.harness import (
    Collector,
    Producer,
    Topics,
    account,
    broker_and_model,
    start_worker,
    wait_joined,
    wait_until,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument(
        "--rate", type=float, default=None, help="messages per second (default: spread over ~15 s per kill)"
    )
    parser.add_argument(
        "--transactional", action="store_true", help="the worker's exactly-once mode (read_committed reader)"
    )
    parser.add_argument("--batch", type=int, default=8, help="the worker's max batch size")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap-servers", default=None, help="a Kafka; default: an embedded Tansu")
    parser.add_argument("--model", default=None, help="a model directory; default: a tiny random BERT")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with broker_and_model(args.bootstrap_servers, args.model) as (kafka, model_dir):
        embedded = args.bootstrap_servers is None
        topics = Topics.create(kafka, "sigkill", args.partitions)
        group = f"sigkill-{uuid.uuid4().hex[:8]}"
        log = Path(tempfile.mkdtemp(prefix="sigkill-")) / "worker.log"
        corpus = list(fuzz_messages(args.messages, args.seed, nulls=not embedded, heavy=False))
        producer = Producer(kafka, topics.input)
        rate = args.rate or max(10.0, args.messages / (15.0 * max(1, args.kills)))
        step = max(1, round(rate / 10))
        env = {"STREAM_GUARD_TRANSACTIONAL": "true"} if args.transactional else {}

        def trickle() -> None:
            for start in range(0, len(corpus), step):
                producer.send(corpus[start : start + step])
                time.sleep(0.1)

        feeder = threading.Thread(target=trickle, daemon=True)
        kills = 0
        started = time.monotonic()
        with Collector(kafka, topics) as collector:
            proc = start_worker(kafka, model_dir, topics, group, log, max_batch_size=args.batch, env=env)
            try:
                wait_joined(proc, log, 120)
                feeder.start()
                while kills < args.kills:
                    before = len(collector.outputs)
                    time.sleep(rng.uniform(0.5, 3.0))
                    if not wait_until(lambda b=before: len(collector.outputs) > b, 60):
                        break  # nothing left to process: the remaining kills would find it idle
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    kills += 1
                    since = log.stat().st_size
                    proc = start_worker(
                        kafka, model_dir, topics, group, log, max_batch_size=args.batch, env=env
                    )
                    wait_joined(proc, log, 120, since)
                    print(f"  SIGKILL {kills}: {len(collector.outputs)} outputs so far", flush=True)
                feeder.join()
                wanted = set(producer.sent)
                complete = wait_until(lambda: wanted <= collector.sources(), 300)
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
            time.sleep(1.0)
        books = account(producer.sent, collector.outputs)
    seconds = time.monotonic() - started
    mode = (
        "transactional (exactly-once for read_committed readers)" if args.transactional else "at-least-once"
    )
    print(f"mode {mode}; {rate:g} messages/s")
    print(
        f"SIGKILLs {kills}, messages {books.inputs}, lost {len(books.lost)},"
        f" duplicated {len(books.duplicated)}"
        f" ({sum(books.duplicated.values()) - len(books.duplicated)} extra outputs), dead-lettered"
        f" {books.dead_letters}; last worker exit {code}; {seconds:.0f} s"
    )
    if not complete:
        print("not every input has an output", file=sys.stderr)
    return 0 if complete and not books.lost and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
