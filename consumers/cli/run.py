"""`stream-guard run`: the scoring worker as a service (SIGTERM/SIGINT: finish, commit, exit 0).

Exit codes: 0 after SIGTERM/SIGINT (also while the model loads: the handlers are installed first,
:mod:`consumers.cli.stop_signals`); 2 with one ``error:`` line for what a restart does not fix (bad
settings, a model that does not load, topics that cannot be created, Kafka authentication failing for
``STREAM_GUARD_KAFKA_AUTH_TIMEOUT_S``); 1 when the worker stopped on a failure of the infrastructure
(e.g. outputs not acknowledged), logged as ``worker exited with an error``: a restart resumes from the
last commit.

Every option falls back to its environment variable (shown in the help) and then to the default of
:class:`consumers.worker.settings.WorkerSettings`. confluent_kafka, torch and the model are imported only
when the command runs, so ``stream-guard --help`` stays fast.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from consumers.cli.common import DeviceOpt, ModelOpt, fail
from consumers.cli.stop_signals import StopRequested, StopSignals


def run_command(
    bootstrap_servers: str | None = typer.Option(
        None, "--bootstrap-servers", "-b", help="host:port list (env STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS)"
    ),
    model: str | None = ModelOpt,
    device: str | None = DeviceOpt,
    group_id: str | None = typer.Option(
        None, "--group-id", "-g", help="consumer group (env STREAM_GUARD_GROUP_ID)"
    ),
    input_topics: list[str] | None = typer.Option(
        None, "--input-topic", "-i", help="input topic, repeatable (env STREAM_GUARD_INPUT_TOPICS, a,b,c)"
    ),
    predictions_topic: str | None = typer.Option(
        None, "--predictions-topic", help="clean verdicts (env STREAM_GUARD_PREDICTIONS_TOPIC)"
    ),
    audit_topic: str | None = typer.Option(
        None, "--audit-topic", help="flagged verdicts (env STREAM_GUARD_AUDIT_TOPIC)"
    ),
    dead_letter_topic: str | None = typer.Option(
        None, "--dead-letter-topic", help="malformed input (env STREAM_GUARD_DEAD_LETTER_TOPIC)"
    ),
    thresholds_topic: str | None = typer.Option(
        None, "--thresholds-topic", help="threshold updates; '' = off (env STREAM_GUARD_THRESHOLDS_TOPIC)"
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", "-t", help="start threshold (env STREAM_GUARD_THRESHOLD)"
    ),
    triggers_topic: str | None = typer.Option(
        None,
        "--triggers-topic",
        help="known-trigger updates; '' = off (env STREAM_GUARD_TRIGGERS_TOPIC, default triggers)",
    ),
    triggers_file: Path | None = typer.Option(
        None,
        "--triggers",
        help="start known-trigger set, a TriggerUpdate JSON, until the triggers topic has one "
        "(env STREAM_GUARD_TRIGGERS_FILE)",
    ),
    learn_triggers: bool | None = typer.Option(
        None,
        "--learn-triggers/--no-learn-triggers",
        help="learn triggers from this worker's traffic, in force at once and published to the triggers "
        "topic (env STREAM_GUARD_LEARN_TRIGGERS)",
    ),
    clean_texts: str | None = typer.Option(
        None,
        "--clean-texts",
        help="with --learn-triggers: clean calibration texts, a lab dataset or a file "
        "(env STREAM_GUARD_CLEAN_TEXTS)",
    ),
    max_batch_size: int | None = typer.Option(
        None, "--max-batch-size", help="messages per batch (env STREAM_GUARD_MAX_BATCH_SIZE)"
    ),
    max_batch_tokens: int | None = typer.Option(
        None, "--max-batch-tokens", help="padded tokens per batch (env STREAM_GUARD_MAX_BATCH_TOKENS)"
    ),
    max_wait_ms: float | None = typer.Option(
        None, "--max-wait-ms", help="longest wait for a batch to fill (env STREAM_GUARD_MAX_WAIT_MS)"
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Prometheus /metrics port, 0 = off (env STREAM_GUARD_METRICS_PORT)"
    ),
    transactional: bool | None = typer.Option(
        None, "--transactional/--no-transactional", help="exactly-once (env STREAM_GUARD_TRANSACTIONAL)"
    ),
    create_topics: bool = typer.Option(
        False, "--create-topics", help="create missing input/output topics (1 partition each) first"
    ),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR"),
) -> None:
    """Run the scoring worker: input topics → predictions / audit / dead-letter; thresholds and known
    triggers hot-reloaded."""
    flags: dict[str, Any] = {
        "group_id": group_id,
        "input_topics": input_topics or None,
        "predictions_topic": predictions_topic,
        "audit_topic": audit_topic,
        "dead_letter_topic": dead_letter_topic,
        "thresholds_topic": thresholds_topic,
        "threshold": threshold,
        "triggers_topic": triggers_topic,
        "triggers_file": triggers_file,
        "learn_triggers": learn_triggers,
        "clean_texts": clean_texts,
        "max_batch_size": max_batch_size,
        "max_batch_tokens": max_batch_tokens,
        "max_wait_ms": max_wait_ms,
        "metrics_port": metrics_port,
        "transactional": transactional,
    }
    with StopSignals() as signals:  # before anything slow: a SIGTERM while loading is a clean exit
        try:
            _run(
                signals,
                flags,
                bootstrap_servers,
                model,
                device,
                create_topics=create_topics,
                log_level=log_level,
            )
        except StopRequested as stop:
            typer.echo(f"stream-guard run: stopped by {stop} (nothing consumed)", err=True)
            raise typer.Exit(0) from None


def _run(
    signals: StopSignals,
    flags: dict[str, Any],
    bootstrap_servers: str | None,
    model: str | None,
    device: str | None,
    *,
    create_topics: bool,
    log_level: str,
) -> None:
    from pydantic import ValidationError

    from stream_guard.logs import configure_logging

    configure_logging(level=log_level)
    try:
        settings = _settings(flags, bootstrap_servers, model, device)
    except (ValidationError, ValueError) as err:
        fail(_first_error(err))
    raise typer.Exit(serve(settings, create_topics=create_topics, signals=signals))


def _settings(flags: dict[str, Any], bootstrap: str | None, model: str | None, device: str | None) -> Any:
    from consumers.kafka.settings import KafkaSettings
    from consumers.worker.settings import WorkerSettings
    from stream_guard.settings import DefenderSettings

    kafka = KafkaSettings(**({"bootstrap_servers": bootstrap} if bootstrap else {}))
    kafka.common_config()  # fails early, with a hint, when no bootstrap servers are set
    defender = DefenderSettings(**{k: v for k, v in {"model": model, "device": device}.items() if v})
    given = {k: v for k, v in flags.items() if v is not None}
    return WorkerSettings(**given, kafka=kafka, defender=defender)


def _first_error(err: Exception) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(err)


def serve(settings: Any, *, create_topics: bool = False, signals: StopSignals | None = None) -> int:
    """Run a worker in this (main) thread until SIGTERM/SIGINT; 0 after a clean stop, 1 on failure.

    ``signals``: handlers installed by the caller before the model loads (``run_command``); without
    them they are installed here, once the worker is built. What a restart does not fix (a model that
    does not load, topics that cannot be created, lasting authentication failures) fails with one
    line, exit 2."""
    import structlog

    from consumers.calibrate.job import CalibrationInputError
    from consumers.pipeline.triggers import TriggerFileError, read_trigger_file
    from stream_guard.errors import StreamGuardError

    log = structlog.get_logger("stream_guard.run")
    try:  # a bad trigger file fails before anything else is done
        triggers = read_trigger_file(settings.triggers_file) if settings.triggers_file else None
    except TriggerFileError as err:
        fail(str(err))
    if create_topics:
        _create_topics(settings)
    from consumers.worker.loop import Worker

    if settings.torch_threads:
        from stream_guard.torch_thread import set_torch_threads

        set_torch_threads(settings.torch_threads)  # here and on the thread that runs the model
    try:
        worker = Worker(settings, triggers=triggers)  # TriggerFileError: the set is another model's
    except (StreamGuardError, TriggerFileError, CalibrationInputError) as err:
        fail(str(err))
    stop = threading.Event()
    restore = _stop_on_signals(stop) if signals is None else (lambda: None)
    if signals is not None:
        signals.running(stop)
    try:
        worker.run(stop)
    except StreamGuardError as err:  # e.g. KafkaAuthError: the settings, not the moment, are wrong
        log.error("worker exited with an error", error=str(err))
        fail(str(err))
    except Exception as err:
        log.error("worker exited with an error", error=repr(err))
        return 1
    finally:
        restore()
    return 0


def _create_topics(settings: Any) -> None:
    """``--create-topics``: the missing topics, one partition each; no broker is one line, exit 2."""
    from confluent_kafka import KafkaException

    from consumers.kafka.topics import ensure_topics

    wanted = [*settings.input_topics, *settings.output_topics, *settings.update_topics]
    try:
        ensure_topics(settings.kafka.admin_config(), dict.fromkeys(wanted, 1))
    except (KafkaException, TimeoutError, ValueError) as err:
        reason = err.args[0].str() if isinstance(err, KafkaException) and err.args else str(err)
        fail(f"cannot create topics on {settings.kafka.bootstrap_servers}: {reason}")


def _stop_on_signals(stop: threading.Event) -> Any:
    """First SIGTERM/SIGINT sets ``stop``; a second one kills the process the default way."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signum, signal.SIG_DFL)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
