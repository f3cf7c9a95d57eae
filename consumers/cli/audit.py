"""`stream-guard audit`: show flagged decisions to a person, as a terminal view, an HTML report or JSON.

Reads audit records from files (the audit topic's records, or a replay's output, which mixes in clean
predictions: they count in the summary and the score histogram but are not shown) or follows the audit
topic. Registered on the app by ``consumers.cli.app``; confluent_kafka is imported only for ``--topic``
and ``--triggers-topic``.

With a known-trigger set (``--triggers FILE``, and/or ``--triggers-topic TOPIC``: the newest set there for
each model of the records, as ``stream-guard triggers list`` reads it), the HTML report gains a Known
triggers section (each trigger's evidence and the records it caught) and stderr one line per set.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from consumers.audit.reader import AuditError, AuditItem, file_items, topic_items
from consumers.cli.common import fail
from consumers.pipeline.triggers import TriggerFileError, read_trigger_file
from schemas import AuditRecord, DeadLetterRecord, TriggerUpdate
from stream_guard.audit_html import AuditHtmlBuilder
from stream_guard.errors import StreamGuardError
from stream_guard.known_trigger_report import KnownTriggerHits, summary_line
from stream_guard.render import render_decision
from stream_guard.trigger_report import TriggerCounter, report_table

if TYPE_CHECKING:
    from consumers.kafka.settings import KafkaSettings

KnownSet = tuple[TriggerUpdate | None, str, str]  # (the set or None, where it was read, its model id)


def _write_html(builder: AuditHtmlBuilder, path: str) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    tmp.write_text(builder.render(), encoding="utf-8")
    tmp.replace(target)


def audit_command(
    inputs: list[str] = typer.Option(
        None, "--input", "-i", help="JSONL file(s) of output records; - = stdin"
    ),
    topic: str | None = typer.Option(None, "--topic", help="read the audit topic instead"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep reading the topic for new records"),
    max_records: int | None = typer.Option(None, "--max-records", help="stop after this many topic records"),
    idle_timeout: float = typer.Option(10.0, "--idle-timeout", help="seconds of silence that end a read"),
    html_out: str | None = typer.Option(None, "--html", help="write a self-contained HTML report here"),
    json_out: bool = typer.Option(False, "--json", help="pass flagged records through to stdout, one a line"),
    show_all: bool = typer.Option(False, "--all", help="also show unflagged records that carry a text"),
    min_score: float | None = typer.Option(None, "--min-score", help="only records scoring at least this"),
    max_chars: int = typer.Option(2000, "--max-chars", help="cut longer texts in the terminal view"),
    top: int = typer.Option(10, "--top", help="rows of the trigger report"),
    report_json: str | None = typer.Option(
        None, "--trigger-report", help="write the trigger report (JSON) here"
    ),
    title: str = typer.Option("stream-guard audit report", "--title", help="title of the HTML report"),
    triggers_file: Path | None = typer.Option(
        None,
        "--triggers",
        help="a known-trigger set (TriggerUpdate JSON, the --triggers format): the HTML report lists its "
        "triggers, the evidence that promoted each and the records each caught",
    ),
    triggers_topic: str | None = typer.Option(
        None,
        "--triggers-topic",
        help="as --triggers, with the newest set on this triggers topic for each model of the records",
    ),
) -> None:
    """Render each flagged decision: the text shaded by token score, the trigger candidate, both
    predictions and the score against the threshold; then the words that most often hold the score."""
    if bool(inputs) == (topic is not None):
        fail("give exactly one source: --input FILE... or --topic NAME")
    if follow and topic is None:
        fail("--follow needs --topic")
    file_set = _read_triggers(triggers_file) if triggers_file is not None else None
    kafka = _triggers_kafka(triggers_topic) if triggers_topic is not None else None
    out = Console(highlight=False, soft_wrap=False)
    err = Console(stderr=True, highlight=False)
    builder = AuditHtmlBuilder(title=title) if html_out else None
    triggers = TriggerCounter()
    known = KnownTriggerHits()
    shown = bad = dead = 0
    items: Iterator[AuditItem]
    if topic is not None:
        items = topic_items(
            topic, follow=follow, max_messages=max_records, idle_timeout=0.0 if follow else idle_timeout
        )
    else:
        items = file_items(inputs)
    try:
        for item in items:
            record = item.record
            if isinstance(record, AuditError):
                bad += 1
                err.print(f"[red]skipped[/red] {record.where}: {record.reason}")
                continue
            if isinstance(record, DeadLetterRecord):
                dead += 1
                continue
            if min_score is not None and record.anomaly_score < min_score:
                continue
            if builder is not None:
                builder.add(record)
            triggers.add(record)  # counts every decision; only flagged ones with evidence rank words
            known.add(record)
            audit = item.audit
            if audit is None or not (audit.flagged or show_all):
                continue
            shown += 1
            if json_out:
                sys.stdout.buffer.write(item.raw + b"\n")
                sys.stdout.buffer.flush()
            elif not html_out:
                out.print(render_decision(audit, max_chars))
                if audit.known_triggers:
                    out.print(_known_line(audit))
                out.print()
    except KeyboardInterrupt:
        err.print("[yellow]stopped[/yellow]")
    except StreamGuardError as exc:
        fail(str(exc))
    except Exception as exc:  # confluent_kafka.KafkaException and friends: one line, no traceback
        fail(f"{type(exc).__name__}: {exc}")
    sets: list[KnownSet] = []
    if file_set is not None:
        sets.append((file_set, f"file {triggers_file}", file_set.model_id))
    if kafka is not None and triggers_topic is not None:
        _quiet_logs()
        sets += [(_topic_set(kafka, triggers_topic, m), f"topic {triggers_topic}", m) for m in known.models()]
        if not known.records:
            err.print(f"no records: no model to look up on topic {escape(triggers_topic)}")
    if builder is not None:
        for known_set, where, model_id in sets:
            builder.add_trigger_set(known_set, where=where, model_id=model_id)
    if builder is not None and html_out is not None:
        try:
            _write_html(builder, html_out)
        except OSError as exc:
            fail(f"cannot write {html_out}: {exc}")
        err.print(f"HTML report: {html_out} ({builder.n_flagged} flagged of {builder.n_records} records)")
    if report_json is not None:
        try:
            Path(report_json).write_bytes(
                orjson.dumps(triggers.report().to_dict(), option=orjson.OPT_INDENT_2)
            )
        except OSError as exc:
            fail(f"cannot write {report_json}: {exc}")
    summary = f"{shown} decisions shown; {bad} unreadable records skipped; {dead} dead letters ignored"
    if not json_out:
        report = triggers.report(top)
        if report.rows:
            (err if html_out else out).print(report_table(report, top))
    for line in _known_lines(known, sets):
        err.print(escape(line), soft_wrap=True)
    err.print(summary)


# -- known triggers --------------------------------------------------------------------------------------


def _known_lines(known: KnownTriggerHits, sets: list[KnownSet]) -> list[str]:
    """One line per set read, and one per other model whose records a known trigger caught."""
    lines = [summary_line(known, model_id, known_set, where) for known_set, where, model_id in sets]
    shown = {model_id for _, _, model_id in sets}
    lines += [summary_line(known, m) for m in known.models() if m not in shown and known.caught[m]]
    return lines


def _known_line(audit: AuditRecord) -> str:
    names = ", ".join(dict.fromkeys(hit.trigger for hit in audit.known_triggers))
    return (
        f"[magenta]caught by known trigger[/magenta] {escape(names)} "
        f"(set version {escape(audit.trigger_version or 'unknown')}): flagged whatever its score"
    )


def _read_triggers(path: Path) -> TriggerUpdate:
    try:
        return read_trigger_file(path)
    except TriggerFileError as err:
        fail(str(err))


def _triggers_kafka(topic: str) -> KafkaSettings:
    """The Kafka settings (environment) for reading ``topic``, checked before any record is read."""
    from pydantic import ValidationError

    from consumers.kafka.settings import KafkaSettings
    from consumers.kafka.topics import validate_topic_name

    try:
        validate_topic_name(topic)
        settings = KafkaSettings()
    except ValidationError as err:
        fail(f"invalid Kafka settings: {err.errors()[0]['msg']}")
    except ValueError as err:
        fail(str(err))
    if not settings.bootstrap_servers:
        fail(
            "--triggers-topic needs Kafka: set STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS (or give --triggers FILE)"
        )
    return settings


def _topic_set(kafka: KafkaSettings, topic: str, model_id: str) -> TriggerUpdate | None:
    """The newest set for ``model_id`` on ``topic`` as a worker selects it; None when there is none
    (or no such topic)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from consumers.worker.update_listener import TRIGGERS, latest_update

    try:
        topics = AdminClient({**kafka.admin_config(), "log_level": 2}).list_topics(timeout=10).topics
        return latest_update(kafka, topic, model_id, TRIGGERS) if topic in topics else None
    except (KafkaException, TimeoutError) as err:
        detail = err.args[0].str() if isinstance(err, KafkaException) and err.args else str(err)
        fail(f"cannot read topic {topic!r} at {kafka.bootstrap_servers}: {detail}")


def _quiet_logs() -> None:
    """The update reader logs ignored updates; keep stdout for the records (--json): errors only, stderr."""
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
