"""`stream-guard demo`: the whole product on embedded defaults, end to end, in one command.

1. Kafka: the configured bootstrap servers, or an embedded Tansu broker started for the run.
2. Model: ``--model DIR``, or the lab's backdoored demo model (movie sentences, BadNets trigger ``cf``,
   target *negative*), trained once on the CPU and cached under ``$STREAM_GUARD_HOME/models``
   (default ``~/.cache/stream-guard/models``).
3. Calibration on the model's clean **validation** split; the ThresholdUpdate is published to the
   thresholds topic exactly as ``stream-guard calibrate --publish`` does.
4. The scoring worker (:class:`consumers.worker.loop.Worker`) runs in a thread and picks the threshold up
   from the topic; sample traffic from the **test** split (clean, triggered, malformed) is produced to
   the input topic while a reader follows the predictions, audit and dead-letter topics. The worker
   learns triggers from its own traffic (``run --learn-triggers``, insertion test on the calibration
   texts) and publishes them to the triggers topic.
5. A live view counts the outputs; the run ends once every message has an output (or on
   ``--timeout``), prints a summary and exits 0 (1 on timeout or failure, 130 on Ctrl-C).

On an external Kafka the demo's topics get a per-run suffix, so runs never read each other's records.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from consumers.calibrate.job import (
    CleanTexts,
    parse_length_edges,
    publish_update,
    run_calibration,
)
from consumers.demo.traffic import DemoTopics, OutputReader, Tally, Traffic, build_traffic, model_meta
from consumers.demo.view import DemoFacts, Learned, live_view, summary_lines, thresholds_text
from consumers.kafka.settings import KafkaSettings
from consumers.worker.thread import WorkerThread

HOME_ENV = "STREAM_GUARD_HOME"
_TICK_S = 0.1


def _step(console: Console, message: str) -> None:
    console.print(f"[bold]▸[/bold] {message}", soft_wrap=True)


def stream_guard_home() -> Path:
    """``$STREAM_GUARD_HOME``, else ``$XDG_CACHE_HOME/stream-guard``, else ``~/.cache/stream-guard``."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stream-guard"


def _start_worker(
    kafka: KafkaSettings,
    topics: DemoTopics,
    defender: Any,
    run_id: str,
    clean_file: Path,
    on_learned: Any,
) -> WorkerThread:
    """The scoring worker on the demo's topics, running in a thread (thresholds from the topic); it
    learns triggers from its own traffic (``run --learn-triggers``) and publishes them."""
    from consumers.worker.loop import Worker
    from consumers.worker.settings import WorkerSettings

    settings = WorkerSettings(
        kafka=kafka,
        group_id=f"stream-guard-demo-{run_id}",
        input_topics=[topics.texts],
        predictions_topic=topics.predictions,
        audit_topic=topics.audit,
        dead_letter_topic=topics.dead_letter,
        thresholds_topic=topics.thresholds,
        triggers_topic=topics.triggers,  # what the worker learns is published here, for every worker
        threshold=None,
        metrics_port=None,
        learn_triggers=True,
        clean_texts=str(clean_file),
    )
    worker = Worker(settings, defender=defender)
    assert worker.learning is not None
    worker.learning.on_learned = on_learned
    return WorkerThread(worker, name="demo-worker").start()


def _on_learned(defender: Any, learned: list[Learned]) -> Any:
    """What to do with each trigger the worker learns: note it."""
    names = defender.classifier.label_names

    def promoted(trigger: Any, update: Any) -> None:
        name = names[trigger.target_label] if trigger.target_label < len(names) else str(trigger.target_label)
        learned.append(
            Learned(
                trigger.text,
                name,
                trigger.evidence_text,
                trigger.insertion_rate,
                trigger.insertion_texts,
                update.version,
            )
        )

    return promoted


def _ensure_model(console: Console, model: Path | None) -> tuple[Path, str]:
    """The model directory and a note on where it came from (training it on the first run)."""
    if model is not None:
        return model.expanduser(), "given with --model"
    from stream_guard.lab.model_specs import BackdoorSpec, find_trained
    from stream_guard.lab.train_backdoor import ensure_backdoored_model
    from stream_guard.torch_thread import run_on_torch_thread

    cache = stream_guard_home() / "models"
    if find_trained(cache, BackdoorSpec()) is not None:
        return ensure_backdoored_model(cache), "backdoored demo model, cached"
    _step(console, f"training the backdoored demo model (first run only, a few minutes on a CPU) in {cache}")
    started = time.perf_counter()
    path = run_on_torch_thread(ensure_backdoored_model, cache, progress=True, wait_s=1800)
    return path, f"backdoored demo model, trained in {time.perf_counter() - started:.0f} s on this run"


def _connect(
    console: Console, stack: contextlib.ExitStack, bootstrap_servers: str | None, run_id: str
) -> tuple[KafkaSettings, DemoTopics, str]:
    """Kafka settings, the demo's topic names and a note on the broker (started here when none is set)."""
    from consumers.devtools.broker import EmbeddedBroker

    kafka = KafkaSettings(**({"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}))
    if kafka.bootstrap_servers:
        return kafka, DemoTopics.named(f"-demo-{run_id}"), f"Kafka at {kafka.bootstrap_servers}"
    broker = stack.enter_context(EmbeddedBroker())
    stack.callback(gc.collect)  # last before the broker stops: free the clients that talk to it
    address = broker.bootstrap_servers
    _step(console, f"embedded Kafka broker (Tansu, in memory) at {address}")
    # the broker stops before every client is collected: their "disconnected" logs are noise
    kafka = KafkaSettings(bootstrap_servers=address, extra={"log.connection.close": "false"})
    return kafka, DemoTopics.named(), f"embedded Tansu broker at {address} (stopped at exit; data in memory)"


def _stream(
    console: Console,
    stack: contextlib.ExitStack,
    kafka: KafkaSettings,
    traffic: Traffic,
    facts: DemoFacts,
    run: tuple[WorkerThread, OutputReader, Tally, str],
    *,
    rate: float,
    timeout: float,
    learned: list[Learned],
) -> bool:
    """Produce the traffic (``rate`` per second) under a live view; True once every message has an output."""
    from confluent_kafka import Producer

    worker, reader, tally, topic = run
    producer = Producer(kafka.producer_config())
    stack.callback(producer.close)
    messages = traffic.messages
    started = time.monotonic()
    finished, sent, flushed = False, 0, False

    def view() -> Any:
        return live_view(
            tally.snapshot(), facts, sent, worker.stats.consumed, time.monotonic() - started, list(learned)
        )

    try:
        with Live(view(), console=console, refresh_per_second=4) as live:
            while True:
                elapsed = time.monotonic() - started
                due = len(messages) if rate <= 0 else min(len(messages), int(elapsed * rate) + 1)
                for message in messages[sent:due]:
                    producer.produce(topic, key=message.id.encode(), value=message.value)
                sent = max(sent, due)
                producer.poll(0)
                if sent == len(messages) and not flushed:
                    flushed = producer.flush(30) == 0
                for part, error in (("worker", worker.error), ("output reader", reader.error)):
                    if error is not None:
                        raise RuntimeError(f"the {part} failed: {error!r}")
                if flushed and tally.outputs >= len(messages) and worker.stats.consumed >= len(messages):
                    finished = True
                    break
                if elapsed > timeout:
                    break
                live.update(view())
                time.sleep(_TICK_S)
            live.update(view())
    finally:
        lines = summary_lines(
            tally.snapshot(),
            facts,
            sent,
            worker.stats.consumed,
            time.monotonic() - started,
            finished=finished,
            learned=list(learned),
        )
        console.print()
        console.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)
    return finished


def run_demo(
    console: Console,
    *,
    messages: int,
    trigger_rate: float,
    malformed_rate: float,
    model: Path | None,
    bootstrap_servers: str | None,
    rate: float,
    timeout: float,
    calibration_texts: int | None,
    percentile: float,
    length_edges: str | None,
    seed: int,
    show: int,
    attack_after: int = 0,
) -> int:
    """Run the demo; returns the exit status (0 when every message got its output)."""
    from consumers.kafka.topics import ensure_topics
    from stream_guard.defender import Defender
    from stream_guard.settings import DefenderSettings
    from stream_guard.torch_thread import run_on_torch_thread

    run_id = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as stack:
        kafka, topics, broker_note = _connect(console, stack, bootstrap_servers, run_id)
        model_dir, model_note = _ensure_model(console, model)
        meta = model_meta(model_dir)
        defender = Defender.from_settings(DefenderSettings(model=str(model_dir)))
        traffic = build_traffic(
            meta,
            defender.classifier.tokenizer,
            messages=messages,
            trigger_rate=trigger_rate,
            malformed_rate=malformed_rate,
            calibration_texts=calibration_texts,
            seed=seed,
            predict=lambda texts: run_on_torch_thread(defender.predict_proba, texts),
            attack_after=attack_after,
        )
        ensure_topics(
            kafka.admin_config(), {topics.texts: 3, **dict.fromkeys([*topics.outputs, topics.triggers], 1)}
        )
        clean = CleanTexts(f"{meta['dataset']}/validation", traffic.calibration_texts)
        _step(console, f"calibrating on {len(clean.texts):,} clean validation texts of {meta['dataset']}")
        calibration, update = run_on_torch_thread(  # the worker's thread: one OpenMP pool (torch_thread)
            run_calibration,
            defender,
            clean,
            percentile=percentile,
            length_edges=parse_length_edges(length_edges),
        )
        publish_update(update, kafka.producer_config(), topics.thresholds, admin_config=kafka.admin_config())
        _step(
            console,
            f"threshold {thresholds_text(update)} ({percentile:g}th percentile) published to "
            f"{topics.thresholds!r}; {calibration.clean_flag_rate():.1%} of the calibration texts score "
            "above it",
        )
        names = defender.classifier.label_names
        facts = DemoFacts(
            sent_total=len(traffic.messages),
            triggered=traffic.count("triggered"),
            malformed=traffic.count("malformed"),
            trigger=traffic.trigger,
            target_name=names[traffic.target] if traffic.target < len(names) else str(traffic.target),
            threshold=thresholds_text(update),
            percentile=update.percentile,
            calibration_n=update.calibration.n_texts,
            dataset=str(meta["dataset"]),
            threshold_version=update.version,
            model_dir=str(model_dir),
            model_note=model_note,
            broker=broker_note,
        )
        tally = Tally(target=traffic.target, keep_audits=show)
        learned: list[Learned] = []
        clean_file = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "calibration.txt"
        clean_file.write_text("".join(f"{' '.join(t.split())}\n" for t in traffic.calibration_texts))
        promoted = _on_learned(defender, learned)
        worker = _start_worker(kafka, topics, defender, run_id, clean_file, promoted)
        stack.callback(worker.stop, reraise=False)  # a failure is reported by the live view
        reader = OutputReader(kafka, topics, tally).start()
        stack.callback(reader.stop)
        if not worker.wait_assigned(60):
            raise RuntimeError("the worker did not join its consumer group within 60 s")
        _step(
            console,
            f"worker running: {topics.texts} -> {topics.predictions} / {topics.audit} / "
            f"{topics.dead_letter}; streaming {facts.sent_total} messages ({facts.triggered} with the "
            f"trigger, {facts.malformed} malformed)",
        )
        run = (worker, reader, tally, topics.texts)
        finished = _stream(
            console, stack, kafka, traffic, facts, run, rate=rate, timeout=timeout, learned=learned
        )
    if not finished:
        console.print(f"timed out after {timeout:g} s (raise --timeout)", style="red")
    return 0 if finished else 1
