"""`stream-guard calibrate`: calibrate the threshold on clean texts, write it and/or publish it.

Options fall back to environment variables (as in docker-compose.yml): ``STREAM_GUARD_MODEL``,
``STREAM_GUARD_CALIBRATION_DATASET`` (default ``movies``), ``STREAM_GUARD_CALIBRATION_PERCENTILE``,
``STREAM_GUARD_CALIBRATION_LENGTH_EDGES``, ``STREAM_GUARD_THRESHOLDS_TOPIC`` and the Kafka connection
``STREAM_GUARD_KAFKA_*``; ``--publish`` signs with ``STREAM_GUARD_UPDATE_KEY`` / ``_KEY_FILE`` when set.
Bad input is one line on stderr and exit 2; an unconfirmed publish exits 1.

``--scan-bar SAMPLE`` also measures the trigger learner's insertion bars on the model
(:mod:`consumers.calibrate.learn_bar`) from a sample of clean traffic, and writes them into the update
(``learn_bar``): the learning processes that read the update apply them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from consumers.calibrate.job import (
    DEFAULT_PERCENTILE,
    DEFAULT_THRESHOLDS_TOPIC,
    CalibrationInputError,
    PublishError,
    load_clean_texts,
    parse_length_edges,
    publish_update,
    run_calibration,
    summary_lines,
    write_update,
)
from consumers.calibrate.learn_bar import measure_learn_bar
from consumers.cli.common import (
    BatchSizeOpt,
    DeviceOpt,
    MaxLengthOpt,
    ModelOpt,
    build_defender,
    fail,
    settings_from,
)
from consumers.kafka.settings import KafkaSettings
from consumers.pipeline.update_settings import update_channel_from_env
from stream_guard.errors import StreamGuardError


def calibrate_command(
    model: str | None = ModelOpt,
    dataset: str = typer.Option(
        "movies",
        "--dataset",
        "-d",
        envvar="STREAM_GUARD_CALIBRATION_DATASET",
        help="lab dataset (its clean validation split) or a .csv/.tsv/.jsonl/.txt file of clean texts",
    ),
    percentile: float = typer.Option(
        DEFAULT_PERCENTILE, "--percentile", "-p", envvar="STREAM_GUARD_CALIBRATION_PERCENTILE"
    ),
    length_edges: str | None = typer.Option(
        None,
        "--length-edges",
        envvar="STREAM_GUARD_CALIBRATION_LENGTH_EDGES",
        help="token-count bucket edges, e.g. 16,32,64: one threshold per length bucket",
    ),
    confidence_quantile: float | None = typer.Option(
        None,
        "--confidence-quantile",
        envvar="STREAM_GUARD_CALIBRATION_CONFIDENCE_QUANTILE",
        help="confidence gate: flag only predictions at least as confident as this quantile (0-1) of the "
        "clean ones, e.g. 0.5 (helps models whose clean predictions are not saturated; docs/lab)",
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the ThresholdUpdate JSON here"),
    publish: bool = typer.Option(False, "--publish", help="produce the update to the thresholds topic"),
    thresholds_topic: str = typer.Option(
        DEFAULT_THRESHOLDS_TOPIC, "--thresholds-topic", envvar="STREAM_GUARD_THRESHOLDS_TOPIC"
    ),
    bootstrap_servers: str | None = typer.Option(
        None,
        "--bootstrap-servers",
        "-b",
        help="Kafka bootstrap servers (env STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS)",
    ),
    create_topic: bool = typer.Option(True, "--create-topic/--no-create-topic", help="create it if missing"),
    text_column: str = typer.Option("text", "--text-column", help="text column of a local file"),
    max_texts: int | None = typer.Option(None, "--max-texts", help="calibrate on a seeded subset this large"),
    seed: int = typer.Option(0, "--seed", help="split seed of lab datasets (the lab's default is 0)"),
    scan_bar: str | None = typer.Option(
        None,
        "--scan-bar",
        help="also measure the trigger learner's insertion bar on this sample of clean traffic (a "
        ".csv/.tsv/.jsonl/.txt file or a lab dataset) and write it into the update",
    ),
    scan_bar_words: int | None = typer.Option(
        None, "--scan-bar-words", min=1, help="with --scan-bar: scan a seeded sample of this many words"
    ),
    scan_bar_min_texts: int = typer.Option(
        2, "--scan-bar-min-texts", min=1, help="with --scan-bar: scan words in at least this many texts"
    ),
    device: str | None = DeviceOpt,
    max_length: int | None = MaxLengthOpt,
    batch_size: int | None = BatchSizeOpt,
) -> None:
    """Calibrate the anomaly threshold on clean texts; write it to a file and/or publish it to Kafka."""
    try:
        edges = parse_length_edges(length_edges)
        if not 0.0 < percentile < 100.0:
            raise CalibrationInputError(f"--percentile must be in (0, 100), got {percentile:g}")
        kafka = _kafka_settings(bootstrap_servers) if publish else None
        channel = update_channel_from_env() if publish else None  # the signing key, checked up front
        clean = load_clean_texts(dataset, text_column=text_column, max_texts=max_texts, seed=seed)
        settings = settings_from(model=model, device=device, max_length=max_length, batch_size=batch_size)
        defender = build_defender(settings)
        calibration, update = run_calibration(
            defender,
            clean,
            percentile=percentile,
            length_edges=edges,
            confidence_quantile=confidence_quantile,
        )
        if scan_bar is not None:
            sample = load_clean_texts(scan_bar, text_column=text_column, seed=seed).texts
            _, learn_bar = measure_learn_bar(
                defender, clean.texts, sample, min_texts=scan_bar_min_texts, max_words=scan_bar_words
            )
            update = update.model_copy(update={"learn_bar": learn_bar})
    except (CalibrationInputError, StreamGuardError, ValueError) as err:
        fail(str(err).splitlines()[0])
    for line in summary_lines(calibration, update):
        typer.echo(line)
    try:
        if output is not None:
            write_update(update, output)
            typer.echo(f"wrote        {output}")
        if kafka is not None:
            partition, offset = publish_update(
                update,
                kafka.producer_config(),
                thresholds_topic,
                admin_config=kafka.admin_config() if create_topic else None,
                channel=channel,
            )
            where = f"{thresholds_topic} [partition {partition}, offset {offset}]"
            typer.echo(f"published    {where} at {kafka.bootstrap_servers}")
    except CalibrationInputError as err:
        fail(str(err))
    except PublishError as err:
        fail(str(err), code=1)
    if output is None and not publish:
        typer.echo("(nothing written: give --output FILE.json and/or --publish)")


def _kafka_settings(bootstrap_servers: str | None) -> KafkaSettings:
    from pydantic import ValidationError

    try:
        settings = KafkaSettings(**({"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}))
    except ValidationError as err:
        raise CalibrationInputError(f"invalid Kafka settings: {err.errors()[0]['msg']}") from None
    if not settings.bootstrap_servers:
        raise CalibrationInputError(
            "--publish needs Kafka: give --bootstrap-servers or set STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS "
            "(or run `stream-guard broker`)"
        )
    return settings
