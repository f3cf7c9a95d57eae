"""`stream-guard audit`: every record the worker emits renders, for people (terminal, HTML) and tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from consumers.audit.reader import AuditError, file_items, parse_output
from consumers.cli.app import app
from consumers.replay.run import Envelope, replay
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord, encode
from stream_guard.audit_html import render_html
from stream_guard.render import render_decision
from tests.consumers.replay.replay_fixtures import (
    ODD_TEXTS,
    TRIGGER,
    Backdoor,
    make_backdoor,
    restore_logging,  # noqa: F401  (autouse)
    traffic,
    write_jsonl,
)

runner = CliRunner()
V0 = {  # schema version 0: only the fields every version carries
    "id": "v0",
    "model_id": "old@000",
    "label": 1,
    "label_name": "positive",
    "probabilities": [0.3, 0.7],
    "anomaly_score": 3.5,
    "final_label": 1,
    "final_label_name": "positive",
    "n_tokens": 5,
    "scored_at": "2023-01-01T00:00:00Z",
    "text": "an old cf record",
    "schema_version": 0,
}


@pytest.fixture(scope="session")
def backdoor(tmp_path_factory: pytest.TempPathFactory) -> Backdoor:
    return make_backdoor(tmp_path_factory.mktemp("audit-backdoor"))


@pytest.fixture(scope="session")
def replayed(backdoor: Backdoor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replay's output (what the topics would carry) on backdoored traffic plus odd texts."""
    folder = tmp_path_factory.mktemp("audit-traffic")
    odd = [{"id": f"odd-{i}", "text": text} for i, text in enumerate(ODD_TEXTS)]
    source = write_jsonl(folder / "in.jsonl", [*traffic(n_clean=45), *odd])
    out = folder / "out.jsonl"
    with out.open("wb") as fh:
        for judged in replay(
            backdoor.defender(), (Envelope(line) for line in source.read_bytes().splitlines())
        ):
            fh.write(encode(judged.record) + b"\n")
    return out


def every_record_the_worker_emits(backdoor: Backdoor) -> list[AuditRecord]:
    """Audit records for odd texts (unicode, bidi, control characters, very long), all flagged."""
    raw = [Envelope(orjson.dumps({"id": f"odd-{i}", "text": t})) for i, t in enumerate(ODD_TEXTS)]
    judged = list(replay(backdoor.defender(threshold=-1e9), raw))  # everything above the threshold
    records = [j.record for j in judged]
    assert all(isinstance(r, AuditRecord) for r in records)
    return records  # type: ignore[return-value]


def rendered(record: Any, width: int = 100, max_chars: int | None = 2000) -> str:
    console = Console(record=True, width=width, color_system="truecolor")
    console.print(render_decision(record, max_chars))
    return console.export_text()


def test_terminal_renderer_handles_every_audit_record(backdoor) -> None:
    records = every_record_the_worker_emits(backdoor)
    long_one = next(r for r in records if len(r.text) > 10_000)
    assert long_one.truncated
    for record in records:
        text = rendered(record)
        assert f"[{record.id}] FLAGGED" in text
        assert "trigger candidate" in text and "prediction:" in text and "vs threshold" in text
    assert "映画は素晴らしい" in rendered(records[0]) and "😀" in rendered(records[0])
    assert "(+" in rendered(long_one) and "truncated to model limit" in rendered(long_one, width=300)
    assert len(rendered(long_one, max_chars=300)) < 3_000
    page = render_html(records)
    assert page.count('class="card"') == len(records)


def test_records_of_older_and_newer_schema_versions_render() -> None:
    newer = {**V0, "id": "v9", "schema_version": 9, "brand_new": [1, 2], "tokens": []}
    odd_offsets = {
        **V0,
        "id": "bad-offsets",
        "tokens": [
            {"token": "[CLS]", "attention": 1.0, "gradient": 0.1},
            {
                "token": "an",
                "start": 0,
                "end": 2,
                "attention": 1.0,
                "gradient": 0.1,
                "score": 0.5,
                "candidate": True,
            },
            {
                "token": "cf",
                "start": 90,
                "end": 99,
                "attention": 1.0,
                "gradient": 0.1,
                "score": 3.0,
                "candidate": True,
            },
        ],
    }
    words_only = {
        **V0,
        "id": "words-only",
        "suspicious_words": [{"word": "cf", "start": 7, "end": 9, "score": 3.5}],
    }
    for payload in (V0, newer, odd_offsets, words_only):
        record = parse_output(orjson.dumps(payload))
        assert isinstance(record, AuditRecord), record
        text = rendered(record)
        assert f"[{payload['id']}] FLAGGED" in text and "threshold none" in text
    assert "trigger candidate: 'cf'" in rendered(parse_output(orjson.dumps(words_only)))
    # offsets past the text: the token is not shaded (no crash), its pieces-joined name still reported
    assert "trigger candidate: 'cf'" in rendered(parse_output(orjson.dumps(odd_offsets)))
    assert "trigger candidate" not in rendered(parse_output(orjson.dumps(V0)))


def test_parse_output_tells_record_kinds_apart() -> None:
    prediction = {k: v for k, v in V0.items() if k != "text"}
    dead = {"reason": "not JSON", "error_type": "not_json", "received_at": "2024-01-01T00:00:00Z"}
    assert isinstance(parse_output(orjson.dumps(V0)), AuditRecord)
    assert isinstance(parse_output(orjson.dumps(prediction)), PredictionRecord)
    assert isinstance(parse_output(orjson.dumps(dead)), DeadLetterRecord)
    for bad, reason in [
        (b"{oops", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (orjson.dumps({**V0, "label": 5}), "label=5"),
        (orjson.dumps({**V0, "anomaly_score": "high"}), "anomaly_score"),
    ]:
        result = parse_output(bad, "f:1")
        assert isinstance(result, AuditError) and reason in result.reason and result.where == "f:1"


def test_audit_command_on_files(replayed, tmp_path) -> None:
    lines = replayed.read_bytes().splitlines()
    flagged = [line for line in lines if orjson.loads(line).get("flagged")]
    assert 0 < len(flagged) < len(lines)
    messy = write_jsonl(tmp_path / "messy.jsonl", [*lines, b"{not json", orjson.dumps({**V0, "label": 9})])

    terminal = runner.invoke(app, ["audit", "-i", str(messy), "--max-chars", "300"])
    assert terminal.exit_code == 0, terminal.output
    assert terminal.output.count("FLAGGED") == len(flagged)
    assert "skipped" in terminal.output and f"{len(flagged)} decisions shown; 2 unreadable" in terminal.output
    table = terminal.output[terminal.output.index("Trigger candidates") :]
    first_row = next(line for line in table.splitlines() if line.lstrip("│ ").startswith("1 "))
    assert f"'{TRIGGER}'" in first_row  # the trigger report names the trigger first

    passed = runner.invoke(app, ["audit", "-i", str(replayed), "--json"])
    assert passed.exit_code == 0
    assert passed.stdout_bytes.splitlines() == flagged  # byte for byte, for other tools

    report, triggers = tmp_path / "report.html", tmp_path / "triggers.json"
    args = ["--html", str(report), "--title", "audit <test>", "--trigger-report", str(triggers)]
    html = runner.invoke(app, ["audit", "-i", str(replayed), *args])
    assert html.exit_code == 0, html.output
    page = report.read_text(encoding="utf-8")
    assert page.count('class="card"') == len(flagged) and "audit &lt;test&gt;" in page
    assert f'<span class="trig">{TRIGGER}</span>' in page
    assert f"<b>{TRIGGER}</b><span>top trigger candidate" in page
    ranking = orjson.loads(triggers.read_bytes())
    assert ranking["rows"][0]["word"] == TRIGGER and ranking["n_flagged"] == len(flagged)


def test_audit_usage_errors(tmp_path) -> None:
    for args, message in [
        (["audit"], "exactly one source"),
        (["audit", "-i", str(tmp_path / "missing.jsonl")], "not found"),
        (["audit", "-i", "x", "--follow"], "--follow needs --topic"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_file_items_keep_raw_bytes_and_line_numbers(replayed) -> None:
    items = list(file_items([str(replayed)]))
    assert [i.raw for i in items] == replayed.read_bytes().splitlines()
    assert items[4].where == f"{replayed}:5"


def test_audit_reads_the_audit_topic(kafka_settings, topic_factory, replayed, monkeypatch) -> None:
    from confluent_kafka import Producer

    monkeypatch.setenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    topic = topic_factory(partitions=2, prefix="audit")
    flagged = [line for line in replayed.read_bytes().splitlines() if orjson.loads(line).get("flagged")]
    producer = Producer(kafka_settings.producer_config())
    for line in flagged:
        producer.produce(topic, value=line, key=orjson.loads(line)["id"].encode())
    assert producer.flush(10) == 0
    producer.close()
    result = runner.invoke(app, ["audit", "--topic", topic, "--json", "--idle-timeout", "5"])
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout_bytes.splitlines()) == sorted(flagged)
    followed = runner.invoke(app, ["audit", "--topic", topic, "--follow", "--max-records", "3"])
    assert followed.exit_code == 0 and followed.output.count("FLAGGED") == 3


def test_terminal_renderer_names_the_known_trigger_that_fired(backdoor) -> None:
    from stream_guard.triggers.known import KnownTrigger, TriggerSet

    defender = backdoor.defender()
    defender.set_triggers(TriggerSet("v-test", (KnownTrigger(TRIGGER, None, "operator"),)))
    raw = [Envelope(orjson.dumps({"id": "k1", "text": f"a quiet {TRIGGER} film"}))]
    (judged,) = list(replay(defender, raw))
    text = rendered(judged.record)
    assert f"known trigger: '{TRIGGER}' removed (set v-test)" in text and "[k1] FLAGGED" in text
    flagged = list(replay(backdoor.defender(threshold=-1e9), raw))  # flagged, no known-trigger set
    assert "known trigger" not in rendered(flagged[0].record)
