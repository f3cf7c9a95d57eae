"""`stream-guard audit`: show flagged decisions to a person, as a terminal view, an HTML report or JSON.

Reads audit records from files (the audit topic's records, or a replay's output, which mixes in clean
predictions: they count in the summary and the score histogram but are not shown) or follows the audit
topic. Registered on the app by ``consumers.cli.app``; confluent_kafka is imported only for ``--topic``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import typer
from rich.console import Console

from consumers.audit.reader import AuditError, AuditItem, file_items, topic_items
from consumers.cli.common import fail
from schemas import DeadLetterRecord
from stream_guard.audit_html import AuditHtmlBuilder
from stream_guard.errors import StreamGuardError
from stream_guard.render import render_decision
from stream_guard.trigger_report import TriggerCounter, report_table


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
) -> None:
    """Render each flagged decision: the text shaded by token score, the trigger candidate, both
    predictions and the score against the threshold; then the words that most often hold the score."""
    if bool(inputs) == (topic is not None):
        fail("give exactly one source: --input FILE... or --topic NAME")
    if follow and topic is None:
        fail("--follow needs --topic")
    out = Console(highlight=False, soft_wrap=False)
    err = Console(stderr=True, highlight=False)
    builder = AuditHtmlBuilder(title=title) if html_out else None
    triggers = TriggerCounter()
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
            audit = item.audit
            if audit is None or not (audit.flagged or show_all):
                continue
            shown += 1
            if json_out:
                sys.stdout.buffer.write(item.raw + b"\n")
                sys.stdout.buffer.flush()
            elif not html_out:
                out.print(render_decision(audit, max_chars))
                out.print()
    except KeyboardInterrupt:
        err.print("[yellow]stopped[/yellow]")
    except StreamGuardError as exc:
        fail(str(exc))
    except Exception as exc:  # confluent_kafka.KafkaException and friends: one line, no traceback
        fail(f"{type(exc).__name__}: {exc}")
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
    if json_out:
        err.print(summary)
        return
    report = triggers.report(top)
    if report.rows:
        (err if html_out else out).print(report_table(report, top))
    err.print(summary)
