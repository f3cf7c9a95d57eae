"""`stream-guard triggers list | add | revoke | publish`, on a file and on the triggers topic of the real
broker: each change is the next whole set, newer than the one before, and what `list` shows is what a
worker selects from the topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.cli.app import app
from consumers.kafka.topic_reader import TopicRange, read_topic
from consumers.pipeline.triggers import add_trigger, update_from_learned, write_trigger_file
from consumers.worker.update_listener import TRIGGERS, UpdateSelector
from schemas import TriggerUpdate, decode, encode
from stream_guard.loading import load_classifier
from stream_guard.triggers.rule import LearnedTrigger

MODEL = "tiny@0123456789ab"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def one_error_line(result: Any, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def listed(*args: str) -> TriggerUpdate | None:
    raw = orjson.loads(ok("triggers", "list", "--json", *args))
    return None if raw is None else TriggerUpdate.model_validate(raw)


def _learned(text: str) -> LearnedTrigger:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    return LearnedTrigger(text, 1, 12, 12, 3, at - timedelta(hours=2), at, 1.0, 103, 0.0, at)


# -- on a file -----------------------------------------------------------------------------------------


def test_add_revoke_and_list_on_a_file(tmp_path: Path) -> None:
    path = str(tmp_path / "triggers.json")
    assert "wrote version" in ok("triggers", "add", "CF", "--model-id", MODEL, "-f", path)
    ok("triggers", "add", "James  Bond", "--target-label", "0", "-f", path)  # the file names its model
    first = listed("-f", path)
    assert first is not None and first.model_id == MODEL and first.texts() == ["cf", "james bond"]
    assert [(t.source, t.target_label) for t in first.triggers] == [("operator", None), ("operator", 0)]
    out = ok("triggers", "revoke", "cf", "-f", path)
    assert "revoked 'cf'" in out and "1 trigger(s), 1 revoked" in out
    second = listed("-f", path)
    assert second.texts() == ["james bond"] and second.revoked == ["cf"]
    assert (second.created_at, second.version) > (first.created_at, first.version)
    table = ok("triggers", "list", "-f", path)
    assert "james bond" in table and "revoked: cf" in table and second.version in table.replace("\n", "")


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "triggers.json"
    write_trigger_file(path, add_trigger(None, MODEL, "cf"))
    before = path.read_bytes()
    line = one_error_line(invoke("triggers", "add", "Cf", "-f", str(path)))
    assert "'cf' is already a known trigger" in line
    line = one_error_line(invoke("triggers", "add", "mn", "--model-id", "other@1", "-f", str(path)))
    assert f"the current set is for model {MODEL!r}, not 'other@1'" in line
    assert "needs at least one word" in one_error_line(invoke("triggers", "revoke", "?!", "-f", str(path)))
    assert path.read_bytes() == before  # refused edits write nothing
    (tmp_path / "bad.json").write_bytes(b"{")
    line = one_error_line(invoke("triggers", "list", "-f", str(tmp_path / "bad.json")))
    assert "invalid trigger file" in line and "not JSON" in line
    assert "not found" in one_error_line(invoke("triggers", "list", "-f", str(tmp_path / "none.json")))
    line = one_error_line(
        invoke("triggers", "add", "cf", "--model-id", MODEL, "-f", str(tmp_path / "no" / "t.json"))
    )
    assert "does not exist" in line


def test_without_a_broker_the_topic_commands_say_how_to_give_one(monkeypatch) -> None:
    monkeypatch.delenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    line = one_error_line(invoke("triggers", "add", "cf", "--model-id", MODEL))
    assert "--bootstrap-servers" in line


# -- on the broker -------------------------------------------------------------------------------------


def test_add_revoke_publish_and_list_on_the_topic(kafka_settings, topic_factory, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    topic = topic_factory(partitions=1, prefix="triggers")
    on = ["-b", kafka_settings.bootstrap_servers, "--topic", topic, "--model-id", MODEL]
    assert "no known triggers" in ok("triggers", "list", *on)
    assert listed(*on) is None
    out = ok("triggers", "add", "cf", *on)
    assert "published version" in out and f"to {topic} [partition 0, offset 0]" in out
    ok("triggers", "add", "James Bond", "--target-label", "0", *on)
    # another model's set, newer, on the same topic: not ours
    producer = Producer(kafka_settings.producer_config())
    foreign = add_trigger(None, "other@1", "film", at=datetime.now(UTC) + timedelta(days=1))
    producer.produce(topic, key=b"other@1", value=encode(foreign))
    assert producer.flush(10) == 0
    producer.close()
    ok("triggers", "revoke", "CF", *on)
    assert "already revoked" in one_error_line(invoke("triggers", "revoke", "cf", *on))
    live = listed(*on)
    assert live.texts() == ["james bond"] and live.revoked == ["cf"] and live.model_id == MODEL

    # a replay's learned set joins it: cf stays revoked, the pin stays a pin
    learned = tmp_path / "learned.json"
    write_trigger_file(
        learned, update_from_learned(MODEL, [_learned("cf"), _learned("tq z"), _learned("james bond")])
    )
    out = ok("triggers", "publish", str(learned), "-b", kafka_settings.bootstrap_servers, "--topic", topic)
    assert "left out (revoked): 'cf'" in out
    merged = listed(*on)
    assert merged.texts() == ["james bond", "tq z"] and merged.revoked == ["cf"]
    assert [t.source for t in merged.triggers] == ["operator", "learned"]
    assert merged.triggers[1].flips == 12 and merged.triggers[1].insertion_texts == 103

    # what a worker selects from the topic is what `list` shows; every message is keyed by its model
    selector = UpdateSelector(TRIGGERS, MODEL)
    messages = list(read_topic(kafka_settings, TopicRange(topic=topic, idle_timeout=5.0)))
    for envelope in messages:
        selector.offer(envelope.value)
    assert selector.best == merged
    # add, add, (the foreign set), revoke, publish; the refused revoke published nothing
    assert [m.key for m in messages] == [MODEL.encode()] * 2 + [b"other@1"] + [MODEL.encode()] * 2
    assert [decode(TriggerUpdate, m.value).model_id for m in messages].count(MODEL) == 4


def test_model_dir_names_the_set_as_the_worker_does(kafka_settings, topic_factory, tiny_bert_dir) -> None:
    topic = topic_factory(partitions=1, prefix="triggers")
    on = ["-b", kafka_settings.bootstrap_servers, "--topic", topic]
    ok("triggers", "add", "cf", *on, "--model", str(tiny_bert_dir))
    model_id = load_classifier(tiny_bert_dir, device="cpu", max_length=64).model_id
    assert listed(*on, "--model-id", model_id).texts() == ["cf"]
    assert listed(*on, "--model-id", "another@1") is None
    line = one_error_line(invoke("triggers", "list", *on, "--model", str(tiny_bert_dir), "--model-id", "x"))
    assert "not both" in line


@pytest.mark.parametrize("missing", ["list", "add"])
def test_a_missing_topic_is_empty_for_list_and_created_by_add(kafka_settings, missing, tmp_path) -> None:
    import uuid

    topic = f"test-triggers-missing-{uuid.uuid4().hex[:8]}"
    on = ["-b", kafka_settings.bootstrap_servers, "--topic", topic, "--model-id", MODEL]
    if missing == "list":
        assert listed(*on) is None
    else:
        ok("triggers", "add", "cf", *on)
        assert listed(*on).texts() == ["cf"]
