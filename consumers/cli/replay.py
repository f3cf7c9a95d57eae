"""`stream-guard replay`: re-judge historical traffic (files or a topic range) with a model and threshold.

Registered on the app by ``consumers.cli.app``. confluent_kafka is imported only when a topic is read
or written, so file replays work without a broker.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from consumers.cli.common import (
    DeviceOpt,
    MaxLengthOpt,
    ModelOpt,
    RoundsOpt,
    StrategyOpt,
    ThresholdFileOpt,
    ThresholdOpt,
    TriggersFileOpt,
    WordsOpt,
    apply_threshold_update,
    apply_trigger_update,
    build_defender,
    fail,
    read_threshold_option,
    read_triggers_option,
    settings_from,
)
from consumers.cli.replay_learning import learning_for, report_learning
from consumers.pipeline.envelope import Envelope
from consumers.pipeline.message_path import Output
from consumers.replay.compare import CompareSummary, Disagreement, compare
from consumers.replay.run import DEFAULT_BATCH, MAX_MESSAGE_BYTES, ReplaySummary, replay
from consumers.replay.sinks import Sink, file_sink
from consumers.replay.sources import FileFormat, count_messages, file_messages
from schemas import ThresholdUpdate
from stream_guard.errors import StreamGuardError

if TYPE_CHECKING:  # torch comes with the first replay, not with `stream-guard --help`
    from stream_guard.defender import Defender

SHOWN_DISAGREEMENTS = 15


def parse_time(value: str) -> datetime:
    """RFC 3339 (naive = UTC) or Unix milliseconds."""
    if value.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"not a time: {value!r} (use RFC 3339, e.g. 2024-05-01T00:00:00Z, or Unix milliseconds)")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _topic_source(topic: str, **range_args: Any) -> Iterator[Envelope]:
    from consumers.kafka.settings import KafkaSettings
    from consumers.kafka.topic_reader import TopicRange, read_topic

    return read_topic(KafkaSettings(), TopicRange(topic=topic, **range_args))


def _sink(output: str | None, errors: str | None, topics: tuple[str | None, str | None, str | None]) -> Sink:
    predictions, audit, dead = topics
    if output is not None:
        return file_sink(output, errors)
    from consumers.kafka.settings import KafkaSettings
    from consumers.replay.topic_sink import TopicSink

    assert predictions is not None
    return TopicSink(KafkaSettings(), predictions, audit, dead)


def print_summary(console: Console, summary: ReplaySummary, seconds: float) -> None:
    labels = ", ".join(f"{name} {count}" for name, count in sorted(summary.labels.items())) or "none"
    console.print(
        f"[bold]replayed[/bold] {summary.read} messages in {seconds:.1f} s: {summary.scored} scored, "
        f"{summary.dead_letters} dead letters"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(summary.errors.items()))})" if summary.errors else "")
    )
    console.print(
        f"flagged {summary.flagged} ({summary.flagged_rate:.1%}), label changes {summary.label_changes}; "
        f"final labels: {labels}"
    )


def print_comparison(console: Console, summary: CompareSummary, shown: list[Disagreement]) -> None:
    counts = summary.to_dict()
    console.print(
        f"[bold]compare[/bold] {summary.compared} messages: A flagged {summary.flagged_a}, "
        f"B flagged {summary.flagged_b}; they disagree on {summary.disagreements} "
        f"(flag {counts['by_kind']['flag']}, final label {counts['by_kind']['final_label']}, "
        f"label {counts['by_kind']['label']})"
    )
    if not shown:
        return
    table = Table(title=f"first {len(shown)} disagreements", title_justify="left")
    for column in ("id", "kinds", "A flag/label/score", "B flag/label/score"):
        table.add_column(column)
    for d in shown:
        table.add_row(
            d.id,
            ",".join(d.kinds),
            f"{d.a['flagged']!s:5} {d.a['final_label']} {d.a['anomaly_score']:.3f}",
            f"{d.b['flagged']!s:5} {d.b['final_label']} {d.b['anomaly_score']:.3f}",
        )
    console.print(table)


def replay_command(
    input_path: str | None = typer.Option(
        None, "--input", "-i", help="JSONL or CSV file of input messages; - = stdin"
    ),
    file_format: str = typer.Option("auto", "--format", help="auto (from the suffix) | jsonl | csv"),
    id_column: str = typer.Option("id", "--id-column", help="CSV column holding the message id"),
    text_column: str = typer.Option("text", "--text-column", help="CSV column holding the text"),
    topic: str | None = typer.Option(None, "--topic", help="read a range of this input topic instead"),
    partitions: list[int] = typer.Option(None, "--partition", help="partition(s) to read (default all)"),
    start_offset: int | None = typer.Option(None, "--start-offset", help="first offset (inclusive)"),
    end_offset: int | None = typer.Option(
        None, "--end-offset", help="stop before this offset (default: end)"
    ),
    from_time: str | None = typer.Option(
        None, "--from-time", help="start at this time (RFC 3339 or Unix ms)"
    ),
    max_messages: int | None = typer.Option(None, "--max-messages", help="stop after this many messages"),
    idle_timeout: float = typer.Option(
        10.0, "--idle-timeout", help="seconds of silence that end a partition"
    ),
    output: str | None = typer.Option(None, "--output", "-o", help=".jsonl (- = stdout) or .parquet file"),
    errors_path: str | None = typer.Option(None, "--errors", help="write dead letters (JSONL) here"),
    output_topic: str | None = typer.Option(None, "--output-topic", help="publish predictions here"),
    audit_topic: str | None = typer.Option(None, "--audit-topic", help="publish flagged records here"),
    dead_letter_topic: str | None = typer.Option(
        None, "--dead-letter-topic", help="publish dead letters here"
    ),
    scored_at: str | None = typer.Option(None, "--scored-at", help="fixed scored_at for every record"),
    compare_with: str | None = typer.Option(
        None,
        "--compare",
        help="B side: a number is another threshold, a .json file a threshold file, anything else a model",
    ),
    compare_model: str | None = typer.Option(None, "--compare-model", help="B side: another model"),
    compare_threshold: float | None = typer.Option(
        None, "--compare-threshold", help="B side: another threshold"
    ),
    compare_threshold_file: Path | None = typer.Option(
        None, "--compare-threshold-file", help="B side: another ThresholdUpdate JSON (as --threshold-file)"
    ),
    disagreements_path: str | None = typer.Option(
        None, "--disagreements", help="write disagreements (JSONL)"
    ),
    model: str | None = ModelOpt,
    threshold: float | None = ThresholdOpt,
    threshold_file: Path | None = ThresholdFileOpt,
    triggers_file: Path | None = TriggersFileOpt,
    device: str | None = DeviceOpt,
    strategy: str | None = StrategyOpt,
    words_per_round: int | None = WordsOpt,
    max_rounds: int | None = RoundsOpt,
    max_length: int | None = MaxLengthOpt,
    batch_size: int = typer.Option(DEFAULT_BATCH, "--batch-size", help="messages per Defender.judge call"),
    max_message_bytes: int = typer.Option(
        MAX_MESSAGE_BYTES, "--max-message-bytes", help="larger values are dead-lettered (as the worker's)"
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar on stderr"),
    learn_triggers: bool = typer.Option(
        False, "--learn-triggers", help="learn backdoor triggers from the replayed traffic, in input order"
    ),
    clean_texts: str | None = typer.Option(
        None,
        "--clean-texts",
        help="with --learn-triggers: clean texts for the insertion test, a lab dataset (its validation "
        "split) or a .csv/.tsv/.jsonl/.txt file, as calibrate --dataset (use the calibration texts)",
    ),
    triggers_out: Path | None = typer.Option(
        None, "--triggers-out", help="with --learn-triggers: write the learned set (a TriggerUpdate JSON)"
    ),
    probe_rate: float | None = typer.Option(
        None,
        "--probe-rate",
        help="share of below-threshold texts probed for evidence (env STREAM_GUARD_PROBE_RATE)",
    ),
) -> None:
    """Judge historical messages exactly as the worker would and write the records it would publish.

    Deterministic: the same input, model and threshold give byte-identical output (scored_at is the
    message's own time, never the clock). With --compare-model/--compare-threshold(-file), also judge
    with a second defender and report where the two disagree.
    """
    if (input_path is None) == (topic is None):
        fail("give exactly one source: --input FILE or --topic NAME")
    if output is None and output_topic is None:
        fail("give an output: --output FILE or --output-topic NAME")
    if output is not None and output_topic is not None:
        fail("give one output: --output FILE or --output-topic NAME, not both")
    if file_format not in ("auto", "jsonl", "csv"):
        fail(f"--format must be auto, jsonl or csv, got {file_format!r}")
    if batch_size < 1:
        fail("--batch-size must be >= 1")
    if input_path not in (None, "-") and not Path(input_path).is_file():
        fail(f"input file not found: {input_path}")
    if learn_triggers and clean_texts is None:
        fail("--learn-triggers needs --clean-texts (the clean calibration texts)")
    if (clean_texts is not None or triggers_out is not None) and not learn_triggers:
        fail("--clean-texts and --triggers-out go with --learn-triggers")
    if compare_with is not None:
        try:
            compare_threshold = float(compare_with)
        except ValueError:
            if compare_with.endswith(".json") and Path(compare_with).is_file():
                compare_threshold_file = Path(compare_with)
            else:
                compare_model = compare_with
    update = read_threshold_option(threshold, threshold_file)
    triggers = read_triggers_option(triggers_file)
    compare_update = read_threshold_option(
        compare_threshold, compare_threshold_file, flags=("--compare-threshold", "--compare-threshold-file")
    )
    fixed_time = parse_time(scored_at) if scored_at else None
    flags = dict(
        strategy=strategy, words_per_round=words_per_round, max_rounds=max_rounds, max_length=max_length
    )
    settings = settings_from(model=model, threshold=threshold, device=device, probe_rate=probe_rate, **flags)
    defender = build_defender(settings)
    apply_threshold_update(defender, update, threshold_file)
    apply_trigger_update(defender, triggers, triggers_file)
    other = _compare_side(
        defender,
        settings.model_dump(),
        compare_model,
        compare_threshold,
        (compare_update, compare_threshold_file),
    )
    err = Console(stderr=True, highlight=False)
    if defender.threshold is None:
        err.print(
            "[yellow]no threshold: nothing will be flagged (give --threshold or --threshold-file)[/yellow]"
        )

    total: int | None = None
    if input_path is not None:
        fmt: FileFormat = file_format  # type: ignore[assignment]
        messages = file_messages(input_path, fmt, id_column=id_column, text_column=text_column)
        total = count_messages(input_path, fmt)
    else:
        assert topic is not None
        messages = _topic_source(
            topic,
            partitions=partitions or None,
            start_offset=start_offset,
            end_offset=end_offset,
            from_timestamp_ms=int(parse_time(from_time).timestamp() * 1000) if from_time else None,
            max_messages=max_messages,
            idle_timeout=idle_timeout,
        )
    learning = None
    if learn_triggers:
        if other is not None:
            fail("--learn-triggers cannot be combined with --compare")
        learning = learning_for(defender, clean_texts, max_message_bytes, fixed_time, triggers, update)  # type: ignore[arg-type]
    summary = ReplaySummary()
    comparison = CompareSummary()
    shown: list[Disagreement] = []
    started = datetime.now(UTC)
    try:
        sink = _sink(output, errors_path, (output_topic, audit_topic, dead_letter_topic))
        disagreement_file = open(disagreements_path, "wb") if disagreements_path else None  # noqa: SIM115
    except (StreamGuardError, OSError) as exc:
        fail(str(exc))
    bar = tqdm(
        total=total, unit="msg", desc="replay", disable=not progress, file=sys.stderr, dynamic_ncols=True
    )
    try:
        results: Iterator[tuple[Output, Disagreement | None]]
        if learning is not None:
            results = ((j, None) for j in learning.run(messages, batch_size=batch_size))
        elif other is None:
            results = (
                (j, None) for j in replay(defender, messages, batch_size=batch_size, scored_at=fixed_time)
            )
        else:
            results = compare(
                defender, other, messages, comparison, batch_size=batch_size, scored_at=fixed_time
            )
        for judged, found in results:
            sink.write(judged)
            summary.add(judged)
            bar.update(1)
            if found is not None:
                if len(shown) < SHOWN_DISAGREEMENTS:
                    shown.append(found)
                if disagreement_file is not None:
                    disagreement_file.write(orjson.dumps(found.to_dict()) + b"\n")
        sink.close()
    except (StreamGuardError, OSError) as exc:
        sink.abort()
        fail(str(exc))
    except KeyboardInterrupt:
        sink.abort()
        err.print("[yellow]interrupted: output discarded[/yellow]")
        raise typer.Exit(130) from None
    except Exception as exc:  # confluent_kafka.KafkaException and friends: one line, no traceback
        sink.abort()
        fail(f"{type(exc).__name__}: {exc}")
    finally:
        bar.close()
        if disagreement_file is not None:
            disagreement_file.close()
    print_summary(err, summary, (datetime.now(UTC) - started).total_seconds())
    if learning is not None:
        report_learning(err, learning, defender.model_id, triggers_out, triggers)
    if other is not None:
        print_comparison(err, comparison, shown)


def _compare_side(
    defender: Defender,
    base: dict[str, Any],
    model: str | None,
    threshold: float | None,
    threshold_file: tuple[ThresholdUpdate | None, Path | None] = (None, None),
) -> Defender | None:
    """Side B: the same settings with the other model and/or threshold (the classifier is shared when
    only the threshold differs). Without a threshold of its own, B judges with A's, from a file too; with
    the same model it also judges with A's known triggers (--triggers)."""
    update, path = threshold_file
    if model is None and threshold is None and update is None:
        return None
    overrides = {
        "model": model or base["model"],
        "threshold": base["threshold"] if threshold is None else threshold,
    }
    settings = settings_from(**{**base, **overrides})
    if model is None:
        from stream_guard.defender import Defender

        other = Defender(defender.classifier, settings)
    else:
        other = build_defender(settings)
    if update is not None:
        apply_threshold_update(other, update, path, flag="--compare-threshold")
    elif threshold is None:
        other.set_threshold(defender.threshold)
    if model is None:
        other.set_triggers(defender.triggers)  # a trigger set is the model's: B shares A's only then
    return other
