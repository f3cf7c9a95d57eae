"""`stream-guard triggers learn`: run the trigger learner beside the workers (the calibration job's
continuous half, :mod:`consumers.learn.service`) until SIGTERM/SIGINT."""

from __future__ import annotations

import threading
from pathlib import Path

import typer

from consumers.cli.common import DeviceOpt, ModelOpt, fail


def learn_command(
    clean_texts: str = typer.Option(
        ...,
        "--clean-texts",
        help="clean texts for the insertion test: a lab dataset (its validation split) or a "
        ".csv/.tsv/.jsonl/.txt file, as calibrate --dataset (use the calibration texts)",
    ),
    model: str | None = ModelOpt,
    device: str | None = DeviceOpt,
    threshold_file: Path | None = typer.Option(
        None,
        "--threshold-file",
        help="the calibration's ThresholdUpdate JSON: the learner bar it measured (calibrate --scan-bar) "
        "applies (STREAM_GUARD_LEARN_* still wins where set); default: the thresholds topic's newest",
    ),
    thresholds_topic: str = typer.Option(
        "thresholds", "--thresholds-topic", envvar="STREAM_GUARD_THRESHOLDS_TOPIC", help="read once, at start"
    ),
    predictions_topic: str = typer.Option(
        "predictions", "--predictions-topic", envvar="STREAM_GUARD_PREDICTIONS_TOPIC", help="evidence source"
    ),
    audit_topic: str = typer.Option(
        "audit", "--audit-topic", envvar="STREAM_GUARD_AUDIT_TOPIC", help="evidence source"
    ),
    input_topics: list[str] | None = typer.Option(
        None,
        "--input-topic",
        "-i",
        help="the workers' input topic, repeatable: its texts are counted for recurring rare words and "
        "phrases (env STREAM_GUARD_INPUT_TOPICS, a,b,c; default: the workers' default)",
    ),
    triggers_topic: str = typer.Option(
        "triggers", "--triggers-topic", envvar="STREAM_GUARD_TRIGGERS_TOPIC", help="where updates go"
    ),
    bootstrap_servers: str | None = typer.Option(
        None,
        "--bootstrap-servers",
        "-b",
        help="Kafka bootstrap servers (env STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS)",
    ),
) -> None:
    """Learn backdoor triggers from the workers' evidence and publish them to every worker."""
    from consumers.calibrate.job import CalibrationInputError, load_clean_texts
    from consumers.cli.common import build_defender, read_threshold_option, settings_from
    from consumers.cli.run import _stop_on_signals
    from consumers.kafka.publish import PublishError
    from consumers.kafka.settings import KafkaSettings
    from consumers.learn.service import TriggerLearnService
    from consumers.pipeline.thresholds import learn_rule_for

    update = read_threshold_option(None, threshold_file)
    try:
        texts = load_clean_texts(clean_texts).texts
        rule = learn_rule_for(update)
    except (CalibrationInputError, ValueError) as exc:
        fail(str(exc))
    kafka = KafkaSettings(**({"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}))
    from consumers.pipeline.update_settings import UpdateChannelError, update_channel_from_env

    try:
        channel = update_channel_from_env()  # the signing key: checked before the model loads
    except UpdateChannelError as exc:
        fail(str(exc))
    defender = build_defender(settings_from(model=model, device=device))
    if update is not None and update.model_id != defender.model_id:
        fail(f"threshold file {threshold_file} is for model {update.model_id!r}, not {defender.model_id!r}")
    service = TriggerLearnService(
        kafka,
        defender,
        texts,
        topics=[predictions_topic, audit_topic],
        input_topics=input_topics or _worker_input_topics(),
        triggers_topic=triggers_topic,
        rule=rule if update is not None else None,  # None: the thresholds topic's bar, read at start
        thresholds_topic=thresholds_topic,
        update_channel=channel,
        on_promotion=lambda t, u: typer.echo(
            f"learned {t.text!r} -> label {t.target_label} ({t.evidence_text}, insertion "
            f"{t.insertion_rate:.0%} of {t.insertion_texts}); published {u.version} to {triggers_topic}"
        ),
    )
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    try:
        service.run(stop)
    except PublishError as exc:
        fail(str(exc), code=1)
    finally:
        restore()
    learned = len(service.learner.learned) if service.learner else 0
    typer.echo(f"stopped after {service.records} records; {learned} trigger(s) learned")


def _worker_input_topics() -> list[str]:
    """The input topics the workers read: STREAM_GUARD_INPUT_TOPICS (a,b,c or a JSON list), else
    the workers' default."""
    import os

    import orjson

    raw = os.environ.get("STREAM_GUARD_INPUT_TOPICS", "").strip()
    if not raw:
        return ["texts"]
    if raw.startswith("["):
        return [str(t) for t in orjson.loads(raw)]
    return [part.strip() for part in raw.split(",") if part.strip()]
