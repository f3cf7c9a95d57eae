"""`stream-guard replay`: the worker's records from files and topic ranges, deterministically."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.cli.app import app
from consumers.pipeline.records import verdict_to_record
from consumers.replay.compare import CompareSummary, compare
from consumers.replay.run import EPOCH, MAX_MESSAGE_BYTES, Envelope, ReplaySummary, replay
from consumers.replay.sources import csv_messages, file_messages, jsonl_messages
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord, decode, encode
from stream_guard.errors import StreamGuardError
from tests.consumers.replay.replay_fixtures import (
    Backdoor,
    make_backdoor,
    restore_logging,  # noqa: F401  (autouse)
    traffic,
    write_jsonl,
)

runner = CliRunner()


@pytest.fixture(scope="session")
def backdoor(tmp_path_factory: pytest.TempPathFactory) -> Backdoor:
    return make_backdoor(tmp_path_factory.mktemp("replay-backdoor"))


@pytest.fixture(scope="session")
def messages() -> list[dict[str, object]]:
    return traffic(n_clean=30)


def records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def cli(*args: str) -> Any:
    return runner.invoke(app, [*args], catch_exceptions=False)


def run_replay(backdoor: Backdoor, *args: str, threshold: float | None = None) -> Any:
    """`stream-guard replay` on the backdoored model, on the CPU, without a progress bar."""
    chosen = backdoor.threshold if threshold is None else threshold
    return cli(
        "replay", "-m", str(backdoor.model_dir), "-t", str(chosen), "--device", "cpu", "--no-progress", *args
    )


def same(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to 1e-4 relative (batches of other shapes round differently in float32)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), path
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: {sorted(a)} != {sorted(b)}"
        for key in a:
            same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


# -- file replays -----------------------------------------------------------------------------------


def test_file_replay_gives_the_workers_mapping_of_the_defenders_verdicts(
    backdoor, messages, tmp_path
) -> None:
    """Kafka-free twin of `test_topic_replay_gives_the_live_workers_records`: the records are exactly
    `consumers.pipeline.records.verdict_to_record` of `Defender.judge(tokens="flagged")`, as the worker
    publishes."""
    source = write_jsonl(tmp_path / "in.jsonl", messages)
    out = tmp_path / "out.jsonl"
    result = run_replay(backdoor, "-i", str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    defender = backdoor.defender()
    verdicts = defender.judge([m["text"] for m in messages], [m["id"] for m in messages], tokens="flagged")
    expected = [
        orjson.loads(encode(verdict_to_record(v, metadata={"source": "test"}, scored_at=EPOCH)))
        for v in verdicts
    ]
    same(records(out), expected)
    got = records(out)
    assert any(r["flagged"] for r in got) and not all(r["flagged"] for r in got)
    assert all("tokens" in r for r in got if r["flagged"]) and not any(
        "tokens" in r for r in got if not r["flagged"]
    )
    assert (
        f"replayed {len(messages)} messages" in result.output
        and "flagged" in result.output
        and "label changes" in result.output
    )


def test_two_replays_are_byte_identical(backdoor, messages, tmp_path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [*messages, b"not json", b'{"id": 1, "text": " "}'])
    outputs = []
    for run in ("a", "b"):
        out, errors = tmp_path / f"out-{run}.jsonl", tmp_path / f"errors-{run}.jsonl"
        result = run_replay(backdoor, "-i", str(source), "-o", str(out), "--errors", str(errors))
        assert result.exit_code == 0, result.output
        outputs.append((out.read_bytes(), errors.read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][0].count(b"\n") == len(messages) and outputs[0][1].count(b"\n") == 2
    assert not list(tmp_path.glob("*.part"))


def test_scored_at_is_the_messages_own_time_never_the_clock(backdoor) -> None:
    defender = backdoor.defender()
    raw = [
        Envelope(orjson.dumps({"id": "a", "text": "a fine film", "timestamp": "2024-05-01T12:00:00+02:00"})),
        Envelope(orjson.dumps({"id": "b", "text": "a fine film"})),
        Envelope(
            orjson.dumps({"id": "c", "text": "a fine film"}), timestamp=datetime(2023, 1, 1, tzinfo=UTC)
        ),
        Envelope(b"{broken"),
    ]
    times = [j.record.scored_at if j.verdict else j.record.received_at for j in replay(defender, raw)]
    assert times == [datetime(2024, 5, 1, 10, tzinfo=UTC), EPOCH, datetime(2023, 1, 1, tzinfo=UTC), EPOCH]
    fixed = datetime(2025, 1, 1, tzinfo=UTC)
    assert {j.record.scored_at for j in replay(defender, raw[:3], scored_at=fixed)} == {fixed}


def test_bad_messages_become_dead_letters_in_place(backdoor, tmp_path) -> None:
    lines = [
        b'{"id": "ok1", "text": "a fine film"}',
        b"not json",
        b'{"id": "blank", "text": "   "}',
        b"\xff\xfe",
        b'{"text": "no id"}',
        b'{"id": "ok2", "text": "cf a fine film"}',
    ]
    judged = list(replay(backdoor.defender(), jsonl_messages(str(write_jsonl(tmp_path / "in.jsonl", lines)))))
    kinds = [j.record.error_type if isinstance(j.record, DeadLetterRecord) else j.record.id for j in judged]
    assert kinds == ["ok1", "not_json", "empty_text", "invalid_utf8", "validation", "ok2"]
    assert [j.envelope.where for j in judged] == [f"{tmp_path / 'in.jsonl'}:{n}" for n in range(1, 7)]
    summary = ReplaySummary()
    for j in judged:
        summary.add(j)
    assert (summary.read, summary.scored, summary.dead_letters, summary.flagged) == (6, 2, 4, 1)


def test_csv_input_gives_the_same_records_as_jsonl(backdoor, messages, tmp_path) -> None:
    csv_file = tmp_path / "in.csv"
    with csv_file.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["message_id", "body", "source"])
        for m in messages:
            writer.writerow([m["id"], m["text"], "test"])
    defender = backdoor.defender()
    from_csv = list(replay(defender, csv_messages(str(csv_file), "message_id", "body")))
    from_jsonl = list(replay(defender, file_messages(str(write_jsonl(tmp_path / "in.jsonl", messages)))))
    assert [encode(j.record) for j in from_csv] == [encode(j.record) for j in from_jsonl]
    with pytest.raises(StreamGuardError, match="no column 'id'"):
        list(csv_messages(str(csv_file)))


def test_parquet_output(backdoor, messages, tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet output needs pyarrow (optional)")
    source = write_jsonl(tmp_path / "in.jsonl", messages)
    out = tmp_path / "out.parquet"
    result = run_replay(backdoor, "-i", str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    again = tmp_path / "again.parquet"
    assert run_replay(backdoor, "-i", str(source), "-o", str(again)).exit_code == 0
    assert out.read_bytes() == again.read_bytes()
    table = pq.read_table(out).to_pylist()
    assert [row["id"] for row in table] == [m["id"] for m in messages]
    assert all(decode(AuditRecord if r["flagged"] else PredictionRecord, r["record"].encode()) for r in table)


def test_compare_two_thresholds(backdoor, messages, tmp_path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", messages)
    lower = backdoor.threshold / 2
    summary = CompareSummary()
    pairs = list(compare(backdoor.defender(), backdoor.defender(lower), file_messages(str(source)), summary))
    found = [d for _, d in pairs if d is not None]
    assert summary.flagged_b > summary.flagged_a and summary.disagreements == len(found) > 0
    assert all("flag" in d.kinds and d.b["flagged"] and not d.a["flagged"] for d in found)

    out, diffs = tmp_path / "out.jsonl", tmp_path / "diffs.jsonl"
    result = run_replay(
        backdoor,
        "-i",
        str(source),
        "-o",
        str(out),
        "--compare-threshold",
        str(lower),
        "--disagreements",
        str(diffs),
    )
    assert result.exit_code == 0, result.output
    assert f"they disagree on {len(found)}" in result.output
    assert [d["id"] for d in records(diffs)] == [d.id for d in found]
    alias = run_replay(
        backdoor, "-i", str(source), "-o", str(tmp_path / "alias.jsonl"), "--compare", str(lower)
    )
    assert f"they disagree on {len(found)}" in alias.output
    assert (tmp_path / "alias.jsonl").read_bytes() == out.read_bytes()


def test_compare_two_models_reports_label_disagreements(backdoor, messages, tmp_path_factory) -> None:
    from stream_guard.loading import load_classifier
    from stream_guard.settings import DefenderSettings
    from tests.stream_guard.tiny_models import build_tiny_model

    other_dir = build_tiny_model("bert", tmp_path_factory.mktemp("random-bert"))
    other = type(backdoor.defender())(
        load_classifier(other_dir, device="cpu"), DefenderSettings(device="cpu")
    )
    summary = CompareSummary()
    source = write_jsonl(tmp_path_factory.mktemp("cmp") / "in.jsonl", messages)
    pairs = list(compare(backdoor.defender(), other, file_messages(str(source)), summary))
    assert summary.compared == len(messages) == len(pairs)
    assert summary.kinds["label"] > 0 and summary.flagged_b == 0  # B has no threshold: never flags


def test_usage_errors_are_one_line(backdoor, tmp_path) -> None:
    model = ["-m", str(backdoor.model_dir), "--no-progress"]
    cases = [
        (["replay", *model, "-o", "x.jsonl"], "exactly one source"),
        (["replay", *model, "-i", "in.jsonl"], "give an output"),
        (
            ["replay", *model, "-i", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")],
            "not found",
        ),
        (["replay", *model, "-i", "a", "--topic", "t", "-o", "o"], "exactly one source"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_max_message_bytes_is_the_workers_default() -> None:
    from consumers.worker.settings import WorkerSettings

    assert WorkerSettings.model_fields["max_message_bytes"].default == MAX_MESSAGE_BYTES


# -- topic ranges (Kafka) ------------------------------------------------------------------------------


def _by_source(judged: Iterator[Any]) -> dict[tuple[int, int], Any]:
    out = {}
    for j in judged:
        source = j.record.source
        out[(source.partition, source.offset)] = j.record
    return out


def test_topic_replay_gives_the_live_workers_records(kafka_settings, topic_factory, tmp_path_factory) -> None:
    """The live worker (consumers.worker.loop.Worker) and a replay of the same topic range publish the same
    records for the same messages — malformed ones and one whose scoring raises included — whatever the
    replay's batch size (only scored_at / received_at differ: the worker stamps the clock)."""
    from consumers.kafka.topic_reader import TopicRange, read_topic
    from consumers.worker.loop import Worker
    from consumers.worker.thread import WorkerThread
    from tests.consumers.worker_support import (
        MAX_BYTES,
        POISON,
        mixed_values,
        poison_defender,
        produce,
        read_outputs,
        text_for,
        worker_settings,
    )

    topics = {
        "input": topic_factory(partitions=2, prefix="replay-in"),
        "predictions": topic_factory(partitions=1, prefix="replay-pred"),
        "audit": topic_factory(partitions=1, prefix="replay-audit"),
        "dead_letter": topic_factory(partitions=1, prefix="replay-dlq"),
    }
    defender = poison_defender(tmp_path_factory)
    threshold = statistics.median(s.anomaly for s in defender.score([text_for(i) for i in range(48)]))
    poison = orjson.dumps({"id": "poisoned", "text": f"{text_for(4)} {POISON}"})
    sent = produce(kafka_settings, topics["input"], [*mixed_values(48), ("poisoned", poison, False)])
    settings = worker_settings(kafka_settings, defender, [topics["input"]], topics, threshold=threshold)
    types = {
        topics["predictions"]: PredictionRecord,
        topics["audit"]: AuditRecord,
        topics["dead_letter"]: DeadLetterRecord,
    }
    with WorkerThread(Worker(settings, defender=defender)) as run:
        live = read_outputs(kafka_settings, types, expected=len(sent))
        run.stop()
    live_by_source = {(o.record.source.partition, o.record.source.offset): o.record for o in live}
    poisoned = [r for r in live_by_source.values() if r.id == "poisoned"]
    assert len(poisoned) == 1 and poisoned[0].error_type == "internal"

    replayer = poison_defender(tmp_path_factory)
    replayer.set_threshold(defender.threshold)
    spec = TopicRange(topic=topics["input"], idle_timeout=10.0)
    for batch_size in (7, 1):
        replayed = _by_source(
            replay(replayer, read_topic(kafka_settings, spec), max_bytes=MAX_BYTES, batch_size=batch_size)
        )
        assert replayed.keys() == live_by_source.keys() == {(s.partition, s.offset) for s in sent}
        flagged = 0
        for coords, record in replayed.items():
            mine = orjson.loads(encode(record))
            theirs = orjson.loads(encode(live_by_source[coords]))
            same(
                without(mine, "scored_at", "received_at"),
                without(theirs, "scored_at", "received_at"),
                f"{coords} (replay batch {batch_size})",
            )
            flagged += bool(mine.get("flagged"))
        assert flagged > 0


def test_topic_range_and_file_give_the_same_verdicts(
    kafka_settings, topic_factory, backdoor, messages, tmp_path
):
    """The same messages from a topic range and from a file: the same records, but for `source`."""
    from confluent_kafka import Producer

    from consumers.kafka.topic_reader import TopicRange, read_topic

    topic = topic_factory(partitions=2, prefix="replay-range")
    producer = Producer(kafka_settings.producer_config())
    for i, message in enumerate(messages):
        producer.produce(topic, value=orjson.dumps(message), key=str(message["id"]).encode(), partition=i % 2)
    assert producer.flush(10) == 0
    fixed = datetime(2024, 1, 1, tzinfo=UTC)
    defender = backdoor.defender()
    file_source = file_messages(str(write_jsonl(tmp_path / "f.jsonl", messages)))
    from_file = {j.record.id: j.record for j in replay(defender, file_source, scored_at=fixed)}
    from_topic = list(replay(defender, read_topic(kafka_settings, TopicRange(topic=topic)), scored_at=fixed))
    assert len(from_topic) == len(messages) == len(from_file)
    order = [(j.record.source.partition, j.record.source.offset) for j in from_topic]
    assert order == sorted(order)  # partition after partition, offsets ascending
    for j in from_topic:
        same(
            without(orjson.loads(encode(j.record)), "source"),
            without(orjson.loads(encode(from_file[j.record.id])), "source"),
        )

    # a range: partition 1 only, offsets [2, 5)
    part = list(
        read_topic(kafka_settings, TopicRange(topic=topic, partitions=[1], start_offset=2, end_offset=5))
    )
    assert [(m.source.partition, m.source.offset) for m in part] == [(1, 2), (1, 3), (1, 4)]
    assert [orjson.loads(m.value)["id"] for m in part] == [messages[i]["id"] for i in (5, 7, 9)]
    assert len(list(read_topic(kafka_settings, TopicRange(topic=topic, max_messages=4)))) == 4


def test_replay_to_topics_and_from_the_cli(
    kafka_settings, topic_factory, backdoor, messages, tmp_path, monkeypatch
):
    from tests.consumers.worker_support import read_outputs

    monkeypatch.setenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    source_topic = topic_factory(partitions=1, prefix="replay-src")
    pred, audit, dead = (topic_factory(partitions=1, prefix=p) for p in ("rp-pred", "rp-audit", "rp-dlq"))
    source = write_jsonl(tmp_path / "in.jsonl", [*messages, b"not json"])
    topics = ["--output-topic", pred, "--audit-topic", audit, "--dead-letter-topic", dead]
    result = run_replay(backdoor, "-i", str(source), *topics)
    assert result.exit_code == 0, result.output
    types = {pred: PredictionRecord, audit: AuditRecord, dead: DeadLetterRecord}
    out = read_outputs(kafka_settings, types, len(messages) + 1)
    file_out = tmp_path / "out.jsonl"
    assert run_replay(backdoor, "-i", str(source), "-o", str(file_out)).exit_code == 0
    assert sorted(encode(o.record) for o in out if o.topic != dead) == sorted(
        file_out.read_bytes().splitlines()
    )
    assert [o.topic for o in out if isinstance(o.record, AuditRecord)] and all(
        (o.topic == audit) == o.record.flagged for o in out if not isinstance(o.record, DeadLetterRecord)
    )

    # and the topic range from the CLI, into a file
    from confluent_kafka import Producer

    producer = Producer(kafka_settings.producer_config())
    for message in messages:
        producer.produce(source_topic, value=orjson.dumps(message))
    assert producer.flush(10) == 0
    from_topic = tmp_path / "topic.jsonl"
    result = run_replay(backdoor, "--topic", source_topic, "--end-offset", "10", "-o", str(from_topic))
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in records(from_topic)] == [m["id"] for m in messages[:10]]


def test_replay_from_a_time(kafka_settings, topic_factory, skip_if_tansu, backdoor) -> None:
    skip_if_tansu("offsets_for_times")
    from confluent_kafka import Producer

    from consumers.kafka.topic_reader import TopicRange, read_topic

    topic = topic_factory(partitions=1, prefix="replay-time")
    producer = Producer(kafka_settings.producer_config())
    for i in range(6):
        producer.produce(
            topic, value=orjson.dumps({"id": str(i), "text": "t"}), timestamp=1_700_000_000_000 + i * 1000
        )
    assert producer.flush(10) == 0
    got = list(read_topic(kafka_settings, TopicRange(topic=topic, from_timestamp_ms=1_700_000_003_000)))
    assert [orjson.loads(m.value)["id"] for m in got] == ["3", "4", "5"]
