"""replay --learn-triggers (consumers.replay.learn): learned in input order, applied from the message
that revealed it (a batch is split at the promotion, the rest judged again), deterministic."""

from __future__ import annotations

import orjson
import pytest

from consumers.pipeline.envelope import Envelope
from consumers.replay.learn import LearningReplay
from consumers.replay.run import replay_pipeline
from stream_guard.datasets import load_dataset
from stream_guard.triggers.insertion import InsertionTest
from stream_guard.triggers.learner import TriggerLearner
from stream_guard.triggers.rule import LearnRule
from tests.consumers.replay.replay_fixtures import (
    TRIGGER,
    Backdoor,
    make_backdoor,
    restore_logging,  # noqa: F401  (autouse)
    traffic,
)
from tests.stream_guard.backdoor_model import TARGET_LABEL


@pytest.fixture(scope="module")
def backdoor(tmp_path_factory: pytest.TempPathFactory) -> Backdoor:
    return make_backdoor(tmp_path_factory.mktemp("learn-backdoor"))


def _learning_replay(backdoor: Backdoor, rule: LearnRule | None = None) -> LearningReplay:
    defender = backdoor.defender(probe_rate=0.2)
    movies = load_dataset("movies")
    clean = [movies.texts[i] for i in range(0, 6000, 50)]  # the calibration texts: apart from the traffic
    learner = TriggerLearner.for_texts(InsertionTest(clean, defender.predict_proba), rule)
    return LearningReplay(replay_pipeline(defender), learner)


def _run(backdoor: Backdoor, rule: LearnRule | None = None) -> tuple[LearningReplay, list[bytes], list]:
    messages = traffic(n_clean=60, every=3)  # 80 messages, 20 with the trigger
    run = _learning_replay(backdoor, rule)
    outputs = list(run.run((Envelope(orjson.dumps(m)) for m in messages), batch_size=8))
    return run, [o.record.model_dump_json().encode() for o in outputs], outputs


def test_the_trigger_is_learned_and_every_later_triggered_message_is_neutralized(backdoor: Backdoor) -> None:
    run, _, outputs = _run(backdoor)
    (promotion,) = run.promotions
    assert promotion.trigger.text == TRIGGER and promotion.trigger.target_label == TARGET_LABEL
    assert promotion.version == "replay-1" and promotion.trigger.basis in ("attribution", "recurrence")
    later = outputs[promotion.after_messages :]
    triggered = [o for o in later if TRIGGER in o.verdict.text.split()]
    assert triggered, "the traffic has triggered messages after the promotion"
    for o in triggered:
        assert o.verdict.known_triggers and o.verdict.trigger_version == "replay-1"
        assert o.verdict.final_label != TARGET_LABEL and o.record.flagged
    assert all(o.verdict.trigger_version is None for o in outputs[: promotion.after_messages])
    # in force by the third or fourth triggered message at the latest
    seen = [o for o in outputs[: promotion.after_messages] if TRIGGER in o.verdict.text.split()]
    assert len(seen) <= 3


def test_on_first_sight_the_message_that_shows_the_trigger_is_already_defended(backdoor: Backdoor) -> None:
    messages = traffic(n_clean=60, every=3)
    clean = [m for m in messages if TRIGGER not in str(m["text"]).split()][:30]  # the traffic's history
    triggered = [m for m in messages if TRIGGER in str(m["text"]).split()][:3]
    run = _learning_replay(backdoor)
    outputs = list(run.run((Envelope(orjson.dumps(m)) for m in clean + triggered), batch_size=64))
    (promotion,) = run.promotions
    assert promotion.trigger.basis == "attribution" and promotion.trigger.messages == 1
    assert promotion.after_messages == 30  # judged again at its first message: in force from there
    for o in outputs[30:]:
        assert o.verdict.known_triggers and o.verdict.final_label != TARGET_LABEL
    assert all(not o.verdict.known_triggers for o in outputs[:30])


def test_without_first_sight_the_trigger_is_learned_from_its_recurrence(backdoor: Backdoor) -> None:
    run, _, outputs = _run(backdoor, LearnRule(first_sight_per_message=0.0, test_burst=8.0))
    (promotion,) = run.promotions
    assert promotion.trigger.text == TRIGGER and promotion.trigger.basis == "recurrence"
    # in force from the third or fourth triggered message of the stream
    seen = [o for o in outputs[: promotion.after_messages] if TRIGGER in o.verdict.text.split()]
    assert 2 <= len(seen) <= 3 and promotion.trigger.messages == len(seen) + 1
    assert all(
        o.verdict.known_triggers for o in outputs[promotion.after_messages :] if TRIGGER in o.verdict.text
    )


def test_learning_replays_are_byte_identical(backdoor: Backdoor) -> None:
    first, second = _run(backdoor), _run(backdoor)
    assert first[1] == second[1]
    assert [p.after_messages for p in first[0].promotions] == [p.after_messages for p in second[0].promotions]


def test_replay_learn_triggers_from_the_command_line(backdoor: Backdoor, tmp_path) -> None:
    """`stream-guard replay --learn-triggers`: the records name the trigger once it is learned, the
    learned set is written in the --triggers format, and a second run is byte-identical."""
    from typer.testing import CliRunner

    from consumers.cli.app import app
    from consumers.pipeline.triggers import read_trigger_file
    from tests.consumers.replay.replay_fixtures import write_jsonl

    movies = load_dataset("movies")
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"text": movies.texts[i]} for i in range(0, 6000, 50)])
    source = write_jsonl(tmp_path / "in.jsonl", traffic(n_clean=60, every=3))
    model = ["--model", str(backdoor.model_dir), "--device", "cpu", "--threshold", str(backdoor.threshold)]

    def run(name: str) -> tuple[bytes, object]:
        out, learned = tmp_path / f"{name}.jsonl", tmp_path / f"{name}-triggers.json"
        args = ["replay", *model, "-i", str(source), "-o", str(out), "--batch-size", "8", "--no-progress"]
        args += ["--learn-triggers", "--clean-texts", str(clean), "--triggers-out", str(learned)]
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"learned '{TRIGGER}' -> label {TARGET_LABEL}" in result.output
        return out.read_bytes(), read_trigger_file(learned)

    records_bytes, update = run("first")
    assert [t.text for t in update.triggers] == [TRIGGER] and update.triggers[0].source == "learned"
    assert update.triggers[0].insertion_rate > 0.9 and update.model_id
    assert update.triggers[0].nominated_by in ("attribution", "recurrence")
    rows = [orjson.loads(line) for line in records_bytes.splitlines()]
    hits = [r for r in rows if r.get("known_triggers")]
    assert hits and all(r["trigger_version"] == "replay-1" and r["flagged"] for r in hits)
    assert all(r["final_label"] != TARGET_LABEL for r in hits)
    assert run("second") == (records_bytes, update)

    bad = CliRunner().invoke(app, ["replay", *model, "-i", str(source), "-o", "x.jsonl", "--learn-triggers"])
    assert bad.exit_code == 2 and "--clean-texts" in bad.output


def test_the_threshold_files_measured_bar_is_the_replay_learners(
    backdoor: Backdoor, tmp_path, monkeypatch
) -> None:
    """`calibrate --scan-bar` writes the learner's bar into the threshold file; `replay --learn-triggers
    --threshold-file` learns with it (and STREAM_GUARD_LEARN_* still wins where set)."""
    from typer.testing import CliRunner

    from consumers.calibrate.job import write_update
    from consumers.cli.app import app
    from schemas import CalibrationSummary, LearnBar, ThresholdUpdate
    from tests.consumers.replay.replay_fixtures import write_jsonl

    for name in ("MIN_INSERTION_RATE", "MIN_INSERTION_RATE_UNSEEN"):
        monkeypatch.delenv(f"STREAM_GUARD_LEARN_{name}", raising=False)
    movies = load_dataset("movies")
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"text": movies.texts[i]} for i in range(0, 6000, 50)])
    source = write_jsonl(tmp_path / "in.jsonl", traffic(n_clean=60, every=3))
    bar = LearnBar(
        min_insertion_rate_unseen=0.98, min_insertion_rate=0.98, ceiling=0.88, words=50, margin=0.1
    )
    summary = CalibrationSummary(dataset="clean", n_texts=120, score_mean=0.1, score_std=0.1)
    update = ThresholdUpdate(model_id=backdoor.defender().model_id, version="v1", value=backdoor.threshold,
                             percentile=99.0, calibration=summary, learn_bar=bar,
                             created_at="2026-01-01T00:00:00Z")  # type: ignore[arg-type]  # fmt: skip
    threshold = tmp_path / "threshold.json"
    write_update(update, threshold)
    args = ["replay", "--model", str(backdoor.model_dir), "--device", "cpu", "-i", str(source), "-o",
            str(tmp_path / "out.jsonl"), "--threshold-file", str(threshold), "--no-progress",
            "--batch-size", "8", "--learn-triggers", "--clean-texts", str(clean)]  # fmt: skip
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "insertion bar: 98%, 98% for a word in no clean text" in result.output
    assert f"learned '{TRIGGER}'" in result.output  # it turns every text: above any bar
    monkeypatch.setenv("STREAM_GUARD_LEARN_MIN_INSERTION_RATE_UNSEEN", "0.7")
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert "insertion bar: 98%, 70% for a word in no clean text" in result.output
