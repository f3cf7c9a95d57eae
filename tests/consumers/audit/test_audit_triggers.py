"""`stream-guard audit --triggers FILE / --triggers-topic TOPIC`: the known-trigger set beside the records
(the HTML report's Known triggers section, one line on stderr), on handmade records and sets."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.cli.app import app
from consumers.pipeline.triggers import write_trigger_file
from schemas import KnownTriggerRecord, TriggerUpdate, encode
from tests.consumers.audit.test_reader import V0
from tests.consumers.replay.replay_fixtures import restore_logging, write_jsonl  # noqa: F401 (autouse)

MODEL = "tiny@0"
AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
BASE = {**V0, "model_id": MODEL, "schema_version": 1, "threshold": 1.0, "anomaly_score": 0.2}
BASE.update(final_label=0, final_label_name="negative")  # label 1 = positive, as V0 says


def record(id: str, *hits: tuple[str, int], prediction: bool = False, **fields: Any) -> dict[str, Any]:
    """An output record of MODEL; ``hits`` = (trigger, start) found by the set 'v2' (flagged then)."""
    known = [{"trigger": t, "start": s, "end": s + len(t)} for t, s in hits]
    out = {**BASE, "id": id, "flagged": bool(hits), "known_triggers": known, **fields}
    if hits:
        out["trigger_version"] = "v2"
    if prediction:
        del out["text"]  # a PredictionRecord: counts, no card
    return out


RECORDS = [
    record("r1", ("cf", 2), text="a cf film"),
    record("r2", ("cf", 0), ("cf", 6), text="cf or cf"),  # one record, however often it fires
    record("r3", text="plain gripping", flagged=True, anomaly_score=3.5),  # flagged by its score
    record("r4", ("tq z", 0), prediction=True),
    record("r5", prediction=True, final_label=1, final_label_name="positive"),  # clean
]


def known_set(version: str = "v2", at: datetime = AT, model_id: str = MODEL) -> TriggerUpdate:
    evidence = {"source": "learned", "first_seen": at - timedelta(hours=2), "last_seen": at, "learned_at": at}
    return TriggerUpdate(
        model_id=model_id,
        version=version,
        created_at=at,
        triggers=[
            KnownTriggerRecord(
                text="cf",
                target_label=0,
                flips=12,
                messages=10,
                probes=3,
                insertion_rate=0.98,
                insertion_texts=200,
                clean_rate=0.0,
                **evidence,
            ),
            KnownTriggerRecord(text="tq z", target_label=1),  # an operator's pin: no evidence
        ],
        revoked=["fails"],
    )


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def rows_of(page: str) -> dict[str, list[str]]:
    """Each Known triggers table row: trigger -> the other cells (tags stripped)."""
    rows = {}
    for row in re.findall(r'<tr><td class="trigger">.*?</tr>', page):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    records = write_jsonl(tmp_path / "records.jsonl", [orjson.dumps(r) for r in RECORDS])
    triggers = tmp_path / "triggers.json"
    write_trigger_file(triggers, known_set())
    return records, triggers


def test_html_report_shows_the_set_and_what_it_caught(files, tmp_path: Path) -> None:
    records, triggers = files
    report = tmp_path / "report.html"
    result = invoke("audit", "-i", str(records), "--html", str(report), "--triggers", str(triggers))
    assert result.exit_code == 0, result.output
    page = report.read_text(encoding="utf-8")
    rows = rows_of(page)
    assert rows["cf"][:7] == ["0 (negative)", "learned", "2", "12 / 10", "3", "98% of 200 texts", "0.00%"]
    assert rows["cf"][7:] == ["2026-03-01 10:30:00", "2026-03-01 12:30:00", "2026-03-01 12:30:00"]
    assert rows["tq z"][:3] == ["1 (positive)", "operator", "1"] and set(rows["tq z"][3:]) == {"–"}
    assert f"version v2, created 2026-03-01 12:30:00 UTC · from file {triggers}" in page
    assert "<b>3</b> of 5 records of this model caught by a known trigger" in page
    assert 'revoked (not removed, never learned again): <span class="ktrig">fails</span>' in page
    assert page.count('<div class="card known">') == 2 and page.count('<div class="card">') == 1
    line = f"known triggers of model {MODEL} (version v2, file {triggers}): 2 known, 1 revoked; "
    assert line + "fired in 3 of 5 records: cf 2, tq z 1" in result.stderr


def test_terminal_and_json_show_one_line(files) -> None:
    records, triggers = files
    terminal = invoke("audit", "-i", str(records), "--triggers", str(triggers))
    assert terminal.exit_code == 0, terminal.output
    assert terminal.stdout.count("FLAGGED") == 3
    assert (
        terminal.stdout.count("caught by known trigger cf (set version v2): flagged whatever its score") == 2
    )
    assert "fired in 3 of 5 records: cf 2, tq z 1" in terminal.stderr

    passed = invoke("audit", "-i", str(records), "--triggers", str(triggers), "--json")
    assert passed.exit_code == 0, passed.output
    flagged = [line for line in records.read_bytes().splitlines() if b'"text"' in line][:3]
    assert passed.stdout_bytes.splitlines() == flagged  # stdout stays the records, byte for byte
    assert "fired in 3 of 5 records: cf 2, tq z 1" in passed.stderr

    without = invoke("audit", "-i", str(records))  # no set given: what fired, from the records alone
    assert f"known triggers of model {MODEL}; fired in 3 of 5 records: cf 2, tq z 1" in without.stderr


def test_bad_triggers_are_one_line_and_exit_2(files, tmp_path: Path, monkeypatch) -> None:
    records, _ = files
    not_json, invalid = tmp_path / "not.json", tmp_path / "invalid.json"
    not_json.write_text("{oops")
    invalid.write_bytes(encode(known_set()).replace(b'"tq z"', b'"CF"'))  # cf listed twice
    report = tmp_path / "report.html"
    monkeypatch.delenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    for args, message in [
        (["--triggers", str(tmp_path / "missing.json")], "trigger file not found"),
        (["--triggers", str(not_json)], "invalid trigger file"),
        (["--triggers", str(invalid)], "'cf' is listed twice"),
        (["--triggers-topic", "triggers"], "--triggers-topic needs Kafka"),
        (["--triggers-topic", "no such/topic"], "invalid Kafka topic name"),
    ]:
        result = invoke("audit", "-i", str(records), "--html", str(report), *args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)
        assert not report.exists()  # failed before anything was read or written


def test_the_newest_set_on_the_triggers_topic(
    kafka_settings, topic_factory, files, tmp_path: Path, monkeypatch
) -> None:
    from confluent_kafka import Producer

    monkeypatch.setenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    records, triggers = files
    topic = topic_factory(partitions=1, prefix="triggers")
    producer = Producer(kafka_settings.producer_config())
    for update in (
        known_set("v1", AT - timedelta(days=1)),
        known_set("v3", AT + timedelta(days=1)),  # the newest for MODEL
        known_set("x9", AT + timedelta(days=2), model_id="other@1"),  # another model's, newer
    ):
        producer.produce(topic, key=update.model_id.encode(), value=encode(update))
    assert producer.flush(10) == 0
    producer.close()

    report = tmp_path / "report.html"
    args = ["audit", "-i", str(records), "--html", str(report), "--triggers-topic", topic]
    result = invoke(*args, "--triggers", str(triggers))
    assert result.exit_code == 0, result.output
    page = report.read_text(encoding="utf-8")
    assert page.count('class="panel known-panel"') == 2  # the file's set and the topic's
    assert f"version v3, created 2026-03-02 12:30:00 UTC · from topic {topic}" in page
    assert "x9" not in page and "other@1" not in page
    assert f"(version v3, topic {topic}): 2 known, 1 revoked; fired in 3 of 5 records" in result.stderr

    missing = invoke("audit", "-i", str(records), "--html", str(report), "--triggers-topic", "no-such-topic")
    assert missing.exit_code == 0, missing.output
    assert f"known triggers of model {MODEL}: none at topic no-such-topic" in missing.stderr
    assert "no known-trigger set for this model at topic no-such-topic" in report.read_text(encoding="utf-8")
