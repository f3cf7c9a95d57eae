"""`stream-guard triggers list | add | revoke | publish`: an operator's hand on the known-trigger sets.

Every command works on the newest update for a model on the triggers topic (as a worker selects it:
``consumers.worker.update_listener.latest_update``) or, with ``--file``, on a TriggerUpdate JSON file.
A change is the next whole set (``consumers.pipeline.triggers``), newer than the current one, so every
running worker applies it within a second. On the topic it is published with ``acks=all`` and waited
for until the broker confirms it (key = model id; the topic is created, compacted, when missing).
With an update key (``STREAM_GUARD_UPDATE_KEY`` / ``_KEY_FILE``) what is published is signed, and the
set read from the topic must be signed with it, as the workers require.

The model is named by ``--model-id`` or found from ``--model DIR`` (env ``STREAM_GUARD_MODEL``; the
packaged backbone by default), whose fingerprint is the id the worker uses. Bad input is one line on
stderr and exit 2; an unconfirmed publish exits 1.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from consumers.cli.common import fail

if TYPE_CHECKING:
    from consumers.kafka.settings import KafkaSettings
    from consumers.pipeline.update_settings import UpdateChannelSettings
    from schemas import TriggerUpdate

DEFAULT_TRIGGERS_TOPIC = "triggers"

FileOpt = typer.Option(None, "--file", "-f", help="work on this TriggerUpdate JSON file instead of the topic")
TopicOpt = typer.Option(
    DEFAULT_TRIGGERS_TOPIC, "--topic", envvar="STREAM_GUARD_TRIGGERS_TOPIC", help="the triggers topic"
)
BootstrapOpt = typer.Option(
    None,
    "--bootstrap-servers",
    "-b",
    help="Kafka bootstrap servers (env STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS)",
)
ModelOpt = typer.Option(
    None, "--model", "-m", help="the model directory whose id names the set (env STREAM_GUARD_MODEL)"
)
ModelIdOpt = typer.Option(None, "--model-id", help="the model id (as on the records) instead of --model")
CreateTopicOpt = typer.Option(True, "--create-topic/--no-create-topic", help="create the topic if missing")


def list_command(
    file: Path | None = FileOpt,
    topic: str = TopicOpt,
    bootstrap_servers: str | None = BootstrapOpt,
    model: str | None = ModelOpt,
    model_id: str | None = ModelIdOpt,
    json_out: bool = typer.Option(False, "--json", help="print the update as JSON (null when there is none)"),
) -> None:
    """Show a model's known triggers, with the evidence that promoted each, and the revoked words."""
    _quiet_logs()
    if file is not None:
        update = _read_file(file)
        where = str(file)
    else:
        mid = _model_id(model, model_id)
        update = _latest(_kafka(bootstrap_servers), topic, mid, create=False)
        where = f"topic {topic} (model {mid})"
    if json_out:
        from schemas import encode

        sys.stdout.buffer.write((encode(update) if update is not None else b"null") + b"\n")
        return
    if update is None:
        typer.echo(f"no known triggers: nothing published on {where}")
        return
    _print_update(update, where)


def add_command(
    text: str = typer.Argument(..., help="the word or phrase (matched whole-word, case-folded)"),
    target_label: int | None = typer.Option(None, "--target-label", help="the label it forces, if known"),
    file: Path | None = FileOpt,
    topic: str = TopicOpt,
    bootstrap_servers: str | None = BootstrapOpt,
    model: str | None = ModelOpt,
    model_id: str | None = ModelIdOpt,
    create_topic: bool = CreateTopicOpt,
) -> None:
    """Add a known trigger: every worker removes it from every message from the next version on."""
    from consumers.pipeline.triggers import add_trigger
    from schemas import normalize_trigger

    _edit(
        lambda current, mid: add_trigger(current, mid, text, target_label=target_label),
        f"added {normalize_trigger(text)!r}",
        file,
        topic,
        bootstrap_servers,
        model,
        model_id,
        create_topic,
    )


def revoke_command(
    text: str = typer.Argument(..., help="the word or phrase"),
    file: Path | None = FileOpt,
    topic: str = TopicOpt,
    bootstrap_servers: str | None = BootstrapOpt,
    model: str | None = ModelOpt,
    model_id: str | None = ModelIdOpt,
    create_topic: bool = CreateTopicOpt,
) -> None:
    """Revoke a trigger: workers stop removing it, the learner never learns it again.

    A word that is not a known trigger can be revoked too, so that it is never learned.
    """
    from consumers.pipeline.triggers import revoke_trigger
    from schemas import normalize_trigger

    _edit(
        lambda current, mid: revoke_trigger(current, mid, text),
        f"revoked {normalize_trigger(text)!r}",
        file,
        topic,
        bootstrap_servers,
        model,
        model_id,
        create_topic,
    )


def publish_command(
    file: Path = typer.Argument(..., help="a TriggerUpdate JSON, e.g. from `replay --triggers-out`"),
    topic: str = TopicOpt,
    bootstrap_servers: str | None = BootstrapOpt,
    create_topic: bool = CreateTopicOpt,
) -> None:
    """Merge a trigger file into its model's live set on the topic and publish the next version.

    The file's triggers join the set (an operator's pins stay pins), its revoked words are revoked, and
    nothing revoked on the topic comes back.
    """
    from consumers.pipeline.triggers import merge_triggers

    _quiet_logs()
    incoming = _read_file(file)
    kafka = _kafka(bootstrap_servers)
    current = _latest(kafka, topic, incoming.model_id, create=create_topic)
    try:
        update, left_out = merge_triggers(
            incoming.model_id, incoming.triggers, previous=current, revoked=incoming.revoked
        )
    except ValueError as err:
        fail(str(err))
    if left_out:
        typer.echo(f"left out (revoked): {', '.join(map(repr, left_out))}")
    _publish(kafka, topic, update, f"merged {file}")


# -- the pieces ----------------------------------------------------------------------------------------


def _edit(
    change: Callable[[TriggerUpdate | None, str], TriggerUpdate],
    what: str,
    file: Path | None,
    topic: str,
    bootstrap_servers: str | None,
    model: str | None,
    model_id: str | None,
    create_topic: bool,
) -> None:
    """Read the current set (file or topic), apply ``change(current, model_id)``, write or publish."""
    from consumers.pipeline.triggers import TriggerEditError, TriggerFileError, write_trigger_file

    _quiet_logs()
    if file is not None:
        current = _read_file(file) if file.exists() else None
        if current is not None and model is None and model_id is None:
            mid = current.model_id  # the file names its model
        else:
            mid = _model_id(model, model_id)
        kafka = None
    else:
        mid = _model_id(model, model_id)
        kafka = _kafka(bootstrap_servers)
        current = _latest(kafka, topic, mid, create=create_topic)
    try:
        update = change(current, mid)
    except (TriggerEditError, ValueError) as err:
        fail(str(err))
    if kafka is None:
        assert file is not None
        try:
            write_trigger_file(file, update)
        except TriggerFileError as err:
            fail(str(err))
        typer.echo(f"{what}: wrote version {update.version} to {file} ({_counts(update)})")
        return
    _publish(kafka, topic, update, what)


def _publish(kafka: KafkaSettings, topic: str, update: TriggerUpdate, what: str) -> None:
    from consumers.kafka.publish import PublishError, publish_record
    from schemas import encode

    try:
        partition, offset = publish_record(
            topic,
            update.model_id.encode(),
            encode(_channel().sign(update)),
            kafka.producer_config(),
            what="trigger update",
        )
    except PublishError as err:
        fail(str(err), code=1)
    typer.echo(
        f"{what}: published version {update.version} to {topic} [partition {partition}, offset {offset}] "
        f"at {kafka.bootstrap_servers} ({_counts(update)})"
    )


def _counts(update: TriggerUpdate) -> str:
    return f"model {update.model_id}, {len(update.triggers)} trigger(s), {len(update.revoked)} revoked"


def _read_file(path: Path) -> TriggerUpdate:
    from consumers.pipeline.triggers import TriggerFileError, read_trigger_file

    try:
        return read_trigger_file(path)
    except TriggerFileError as err:
        fail(str(err))


def _model_id(model: str | None, model_id: str | None) -> str:
    """``--model-id``, else the fingerprint of ``--model`` (env STREAM_GUARD_MODEL, else the packaged
    backbone), as the worker computes it when it loads the model."""
    if model_id is not None:
        if model is not None:
            fail("give --model or --model-id, not both")
        if not model_id.strip():
            fail("--model-id is empty")
        return model_id
    from stream_guard.errors import ModelLoadError
    from stream_guard.loading import model_fingerprint, resolve_model_path
    from stream_guard.settings import DefenderSettings

    name = model if model is not None else DefenderSettings().model
    try:
        return model_fingerprint(resolve_model_path(name))
    except ModelLoadError as err:
        fail(str(err))


def _kafka(bootstrap_servers: str | None) -> KafkaSettings:
    from pydantic import ValidationError

    from consumers.kafka.settings import KafkaSettings

    try:
        settings = KafkaSettings(**({"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}))
    except ValidationError as err:
        fail(f"invalid Kafka settings: {err.errors()[0]['msg']}")
    if not settings.bootstrap_servers:
        fail(
            "the triggers topic needs Kafka: give --bootstrap-servers or set "
            "STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS (or work on a --file)"
        )
    return settings


def _channel() -> UpdateChannelSettings:
    """The update channel's settings (signing key, rules) from the environment; one line and exit 2."""
    from consumers.pipeline.update_settings import UpdateChannelError, update_channel_from_env

    try:
        return update_channel_from_env()
    except UpdateChannelError as err:
        fail(str(err))


def _latest(kafka: KafkaSettings, topic: str, model_id: str, *, create: bool) -> TriggerUpdate | None:
    """The newest update for ``model_id`` on ``topic``; None when the topic is empty or (not ``create``)
    does not exist. With ``create`` a missing topic is created (compacted), as a publish would."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from consumers.kafka.topics import ensure_topics, validate_topic_name
    from consumers.worker.update_listener import TRIGGERS, latest_update

    try:
        validate_topic_name(topic)
        if create:
            ensure_topics(
                {**kafka.admin_config(), "log_level": 2},
                {topic: 1},
                topic_config={"cleanup.policy": "compact"},
            )
        else:
            topics = AdminClient({**kafka.admin_config(), "log_level": 2}).list_topics(timeout=10).topics
            if topic not in topics:
                return None
        return latest_update(kafka, topic, model_id, TRIGGERS, policy=_channel().policy())
    except ValueError as err:
        fail(str(err))
    except (KafkaException, TimeoutError) as err:
        detail = err.args[0].str() if isinstance(err, KafkaException) and err.args else str(err)
        fail(f"cannot read topic {topic!r} at {kafka.bootstrap_servers}: {detail}")


def _print_update(update: TriggerUpdate, where: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(
        f"[bold]known triggers[/bold] of model {update.model_id} from {where}: version {update.version}, "
        f"created {update.created_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    table = Table(title_justify="left")
    columns = (
        "trigger",
        "target",
        "source",
        "nominated by",
        "flips/msgs",
        "probes",
        "insertion",
        "clean",
        "first / last seen",
    )
    for column in columns:
        table.add_column(column, no_wrap=column == "trigger")
    for t in update.triggers:
        seen = " / ".join(f"{d:%Y-%m-%d %H:%M}" if d else "-" for d in (t.first_seen, t.last_seen))
        table.add_row(
            t.text,
            "-" if t.target_label is None else str(t.target_label),
            t.source,
            t.nominated_by or "-",
            "-" if t.flips is None else f"{t.flips}/{t.messages if t.messages is not None else '-'}",
            "-" if t.probes is None else str(t.probes),
            "-" if t.insertion_rate is None else f"{t.insertion_rate:.0%} of {t.insertion_texts}",
            "-" if t.clean_rate is None else f"{t.clean_rate:.2%}",
            seen if t.first_seen or t.last_seen else "-",
        )
    if update.triggers:
        console.print(table)
    else:
        console.print("no known triggers in this version")
    console.print(f"revoked: {', '.join(update.revoked) if update.revoked else 'none'}")


def _quiet_logs() -> None:
    """The commands speak for themselves: log only errors, to stderr (stdout may carry --json)."""
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
