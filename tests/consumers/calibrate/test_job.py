"""`stream-guard calibrate`: the threshold is the percentile of clean scores, written and published as a
ThresholdUpdate; bad input is one line and a non-zero exit."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import structlog
from typer.testing import CliRunner

from consumers.calibrate.job import (
    DEFAULT_PERCENTILE,
    CalibrationInputError,
    load_clean_texts,
    parse_length_edges,
)
from consumers.cli.app import app
from consumers.kafka.settings import KafkaSettings
from consumers.pipeline.thresholds import threshold_from_update
from schemas import ThresholdUpdate, decode
from stream_guard.calibration import calibrate
from stream_guard.datasets import load_dataset, split_dataset
from stream_guard.defender import Defender
from stream_guard.loading import load_classifier
from stream_guard.settings import DefenderSettings
from tests.stream_guard.tiny_models import build_tiny_model

TEXTS = [
    f"{adj} film about {noun}, {tail}"
    for adj in ("a gripping", "a dull", "an uneven", "a warm", "a tedious", "a sharp")
    for noun in ("two brothers", "a small town", "the sea")
    for tail in ("told with care", "that drags on and on")
]


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """The command configures structlog to print to CliRunner's stderr, which is closed afterwards."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("bert", tmp_path_factory.mktemp("calibrate-tiny-bert"))


@pytest.fixture
def clean_file(tmp_path: Path) -> Path:
    path = tmp_path / "clean.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": i, "text": t}) + b"\n" for i, t in enumerate(TEXTS)))
    return path


def _scores(model: Path, texts: list[str]) -> np.ndarray:
    defender = Defender(load_classifier(model, device="cpu"), DefenderSettings(model=str(model)))
    return np.array([s.anomaly for s in defender.score(texts)])


def test_output_file_holds_the_percentile_of_clean_scores(
    tiny_model: Path, clean_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "threshold.json"
    args = ["calibrate", "--model", str(tiny_model), "--dataset", str(clean_file)]
    result = CliRunner().invoke(app, [*args, "--percentile", "90", "--output", str(out)])
    assert result.exit_code == 0, result.output
    update = decode(ThresholdUpdate, out.read_bytes())
    scores = _scores(tiny_model, TEXTS)
    assert update.value == pytest.approx(np.percentile(scores, 90), rel=1e-4)
    assert update.percentile == 90.0
    assert update.model_id == load_classifier(tiny_model, device="cpu").model_id
    assert update.calibration.n_texts == len(TEXTS)
    assert update.calibration.dataset == "clean.jsonl"
    assert update.calibration.score_mean == pytest.approx(scores.mean(), rel=1e-4)
    assert update.by_length is None
    assert f"{update.value:.4f}" in result.stdout and "clean flag rate" in result.stdout


def test_confidence_quantile_puts_a_gate_in_the_update_and_the_worker_threshold(
    tiny_model: Path, clean_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "threshold.json"
    args = ["calibrate", "--model", str(tiny_model), "--dataset", str(clean_file), "--output", str(out)]
    result = CliRunner().invoke(app, [*args, "--confidence-quantile", "0.5"])
    assert result.exit_code == 0, result.output
    update = decode(ThresholdUpdate, out.read_bytes())
    defender = Defender(load_classifier(tiny_model, device="cpu"), DefenderSettings(model=str(tiny_model)))
    confidences = [s.probabilities.max() for s in defender.score(TEXTS)]
    assert update.min_confidence == pytest.approx(np.quantile(confidences, 0.5), rel=1e-4)
    assert threshold_from_update(update).min_confidence == update.min_confidence  # what workers apply
    assert "a flag also needs confidence" in result.stdout
    bad = CliRunner().invoke(app, [*args, "--confidence-quantile", "2"])
    assert bad.exit_code != 0 and "confidence-quantile" in bad.output


def test_length_edges_give_per_bucket_thresholds(tiny_model: Path, tmp_path: Path) -> None:
    short = [f"{w} film" for w in ("good", "bad", "fine", "weak", "great", "poor", "dull", "fun")] * 5
    long = [f"{t} and the rest of the cast does what it can with a thin script" for t in TEXTS[:36]]
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join(short + long) + "\n")
    out = tmp_path / "t.json"
    args = ["calibrate", "-m", str(tiny_model), "-d", str(path), "--length-edges", "8", "-p", "95"]
    args += ["-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    update = decode(ThresholdUpdate, out.read_bytes())
    assert update.by_length is not None and [b.max_tokens for b in update.by_length] == [8]
    assert update.by_length[0].value == pytest.approx(np.percentile(_scores(tiny_model, short), 95), rel=1e-4)
    assert update.value == pytest.approx(np.percentile(_scores(tiny_model, long), 95), rel=1e-4)


def test_lab_dataset_uses_the_validation_split_only() -> None:
    clean = load_clean_texts("movies", max_texts=80)
    splits = split_dataset(load_dataset("movies"), seed=0)
    assert clean.name == "movies/validation" and len(clean.texts) == 80
    assert set(clean.texts) <= set(splits.validation.texts)
    assert not set(clean.texts) & (set(splits.test.texts) | set(splits.train.texts))


def test_publish_puts_a_decodable_update_on_the_topic(
    tiny_model: Path, clean_file: Path, kafka_settings: KafkaSettings, topic_factory
) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = topic_factory(partitions=1)
    args = ["calibrate", "-m", str(tiny_model), "-d", str(clean_file), "--publish", "--no-create-topic"]
    args += ["--thresholds-topic", topic, "--bootstrap-servers", str(kafka_settings.bootstrap_servers)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"published    {topic} [partition 0, offset 0]" in result.stdout
    consumer = Consumer(kafka_settings.consumer_config(f"t-{uuid.uuid4().hex[:8]}"))
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(10)
    finally:
        consumer.close()
    assert msg is not None and msg.error() is None
    update = decode(ThresholdUpdate, msg.value())
    assert msg.key() == update.model_id.encode()
    # the default percentile is the core's
    assert (
        update.percentile
        == DEFAULT_PERCENTILE
        == inspect.signature(calibrate).parameters["percentile"].default
    )
    assert update.value == pytest.approx(
        np.percentile(_scores(tiny_model, TEXTS), DEFAULT_PERCENTILE), rel=1e-4
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "/no/such/clean.csv"], "dataset file not found"),
        (["--dataset", "texts.parquet"], "unknown dataset"),
        (["--dataset", "movies", "--percentile", "100"], "--percentile must be in (0, 100)"),
        (["--dataset", "movies", "--length-edges", "16,x"], "--length-edges"),
        (["--dataset", "movies", "--publish", "-b", ""], "--publish needs Kafka"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(
    tiny_model: Path, extra: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAM_GUARD_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, ["calibrate", "--model", str(tiny_model), *extra])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_csv_without_the_text_column_names_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "clean.csv"
    path.write_text("sentence,label\nfine film,1\n")
    with pytest.raises(CalibrationInputError, match=r"no column 'text' \(columns: sentence, label\)"):
        load_clean_texts(str(path))
    assert load_clean_texts(str(path), text_column="sentence").texts == ["fine film"]


def test_parse_length_edges() -> None:
    assert parse_length_edges("32, 16,16") == [16, 32]
    assert parse_length_edges("") is None
    with pytest.raises(CalibrationInputError):
        parse_length_edges("0,8")
