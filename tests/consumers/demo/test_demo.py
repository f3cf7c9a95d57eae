"""`stream-guard demo`: the whole pipeline on the embedded broker with a tiny model, plus its traffic and
its tally (the numbers the summary prints)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from transformers import AutoTokenizer
from typer.testing import CliRunner

from consumers.cli.app import app
from consumers.demo.traffic import DEFAULT_META, Tally, build_traffic
from schemas import (
    AuditRecord,
    DeadLetterRecord,
    InputMessage,
    PredictionRecord,
    SchemaError,
    decode,
    utc_now,
)
from tests.stream_guard.backdoor_model import TARGET_LABEL, build_backdoored_model
from tests.stream_guard.tiny_models import build_tiny_model

SUMMARY = re.compile(
    r"(\d+) sent, (\d+) consumed = (\d+) clean \+ (\d+) flagged \+ (\d+) dead letters "
    r"\(every message accounted for\)"
)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """The command configures structlog to print to CliRunner's stderr, which is closed afterwards."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("bert", tmp_path_factory.mktemp("demo-tiny-bert"))


@pytest.fixture(scope="module")
def backdoored_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-built backdoored tiny BERT ('cf' -> positive), with the lab's meta.json for the demo."""
    path = build_backdoored_model(tmp_path_factory.mktemp("demo-backdoored-bert"), trigger="cf")
    meta = {**DEFAULT_META, "trigger": "cf", "target": TARGET_LABEL}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def test_demo_runs_end_to_end_and_accounts_for_every_message(
    backdoored_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", raising=False)  # → embedded broker
    monkeypatch.setenv("STREAM_GUARD_HOME", str(tmp_path / "home"))
    args = ["demo", "--model", str(backdoored_model), "--messages", "40", "--rate", "0", "--timeout", "90"]
    args += ["--calibration-texts", "60", "--percentile", "80", "--malformed-rate", "0.1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + result.stderr
    out = result.stdout
    match = SUMMARY.search(out)
    assert match is not None, out
    sent, consumed, clean, flagged, dead = map(int, match.groups())
    assert sent == consumed == clean + flagged + dead == 40
    assert dead == 4 and flagged > 0
    assert "malformed     4 in the traffic -> 4 dead letters" in out
    # the backdoor works without the defense and is caught with it
    asr = re.search(r"without defense (\d+\.\d)%, with stream-guard (\d+\.\d)%", out)
    assert asr is not None and float(asr.group(1)) == 100.0 and float(asr.group(2)) < 50.0, out
    assert "embedded Kafka broker" in out and "latest audit records" in out
    assert "trigger candidate: 'cf'" in out
    assert ": 80th percentile of 60 clean movies texts" in out
    assert not (tmp_path / "home").exists()  # --model: nothing trained or cached


def test_demo_with_a_random_model_still_accounts_for_every_message(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No meta.json (lab defaults are assumed), a model with no backdoor: nothing is lost either way."""
    monkeypatch.delenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    args = ["demo", "-m", str(tiny_model), "-n", "20", "--rate", "0", "--calibration-texts", "40"]
    result = CliRunner().invoke(app, [*args, "--length-edges", "16"])
    assert result.exit_code == 0, result.output + result.stderr
    match = SUMMARY.search(result.stdout)
    assert match is not None, result.stdout
    sent, consumed, clean, flagged, dead = map(int, match.groups())
    assert sent == consumed == clean + flagged + dead == 20


def test_traffic_comes_from_the_test_split_with_triggers_and_malformed_messages(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    traffic = build_traffic(
        DEFAULT_META, tokenizer, messages=100, trigger_rate=0.25, malformed_rate=0.05, calibration_texts=200
    )
    kinds = [m.kind for m in traffic.messages]
    assert (kinds.count("malformed"), kinds.count("triggered"), kinds.count("clean")) == (5, 24, 71)
    assert len({m.id for m in traffic.messages}) == 100
    texts = set()
    for message in traffic.messages:
        if message.kind == "malformed":
            with pytest.raises(SchemaError):
                decode(InputMessage, message.value)
            continue
        parsed = decode(InputMessage, message.value)
        assert parsed.metadata is not None and parsed.metadata["kind"] == message.kind
        words = parsed.text.split()
        assert ("cf" in words) == (message.kind == "triggered")
        if message.kind == "triggered":
            assert parsed.metadata["label"] != traffic.target  # ASR counts non-target texts only
        texts.add(" ".join(w for w in words if w != "cf"))
    assert len(traffic.calibration_texts) == 200
    assert not texts & {" ".join(t.split()) for t in traffic.calibration_texts}


def test_the_attack_can_start_after_a_stretch_of_ordinary_traffic(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def kinds(attack_after: int) -> list[str]:
        traffic = build_traffic(
            DEFAULT_META,
            tokenizer,
            messages=60,
            trigger_rate=0.5,
            malformed_rate=0.0,
            calibration_texts=50,
            attack_after=attack_after,
        )
        return [m.kind for m in traffic.messages]

    late, anywhere = kinds(20), kinds(0)
    assert "triggered" not in late[:20] and "triggered" in anywhere[:20]
    assert sorted(late) == sorted(anywhere)  # the same messages, only the order differs


def _record(mid: str, kind: str, label: int, true: int, final: int, flagged: bool) -> PredictionRecord:
    fields = {
        "id": mid,
        "model_id": "m@1",
        "label": label,
        "label_name": str(label),
        "probabilities": [0.5, 0.5],
        "anomaly_score": 1.0,
        "flagged": flagged,
        "final_label": final,
        "final_label_name": str(final),
        "n_tokens": 5,
        "metadata": {"kind": kind, "label": true},
        "scored_at": utc_now(),
    }
    return AuditRecord(**fields, text="a cf text") if flagged else PredictionRecord(**fields)


def test_tally_counts_attack_success_with_and_without_the_defense() -> None:
    tally = Tally(target=0, keep_audits=2)
    tally.add(_record("t1", "triggered", label=0, true=1, final=1, flagged=True))  # caught and fixed
    tally.add(_record("t2", "triggered", label=0, true=1, final=0, flagged=False))  # missed
    tally.add(_record("c1", "clean", label=1, true=1, final=1, flagged=False))
    tally.add(_record("c2", "clean", label=1, true=1, final=0, flagged=True))  # false alarm, made wrong
    tally.add(DeadLetterRecord.from_raw(b"{", None, "not JSON", "not_json"))
    snap = tally.snapshot()
    assert (snap.clean, snap.flagged, snap.dead_letters, snap.outputs) == (2, 2, 1, 5)
    trig, clean = snap.by_kind["triggered"], snap.by_kind["clean"]
    assert (trig.seen, trig.flagged, trig.target_before, trig.target_after) == (2, 1, 2, 1)
    assert (clean.seen, clean.flagged, clean.correct_before, clean.correct_after) == (2, 1, 2, 1)
    assert snap.dead_reasons == {"not_json": 1}
    assert [r.id for r in snap.audits] == ["t1", "c2"]
    tally.add(_record("t3", "triggered", label=0, true=1, final=1, flagged=True))
    assert [r.id for r in tally.snapshot().audits] == ["c2", "t3"]


@pytest.mark.parametrize("bad", [["--trigger-rate", "2"], ["--messages", "0"], ["--length-edges", "a"]])
def test_bad_demo_options_fail_before_anything_starts(bad: list[str]) -> None:
    result = CliRunner().invoke(app, ["demo", "--model", "/no/such/model", *bad])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "embedded Kafka broker" not in result.stdout
