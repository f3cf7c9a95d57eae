"""`calibrate --publish` signs the threshold update when an update key is set, and a keyed worker
applies what it published; a bad key setting is one line and exit 2 before anything is calibrated."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from consumers.calibrate.job import publish_update, threshold_update
from consumers.cli.app import app
from consumers.kafka.topic_reader import TopicRange, read_topic
from consumers.pipeline.update_settings import UpdateChannelSettings
from consumers.worker.update_listener import THRESHOLDS, UpdateSelector
from schemas import SignatureCheck, verify_update
from stream_guard.calibration import calibration_from_scores

KEY = "calibration-key-0123456789abcdef"


def test_publish_signs_with_the_key_and_a_keyed_worker_applies_it(kafka_settings, topic_factory):
    topic = topic_factory(partitions=1)
    rng = np.random.default_rng(1)
    calibration = calibration_from_scores(rng.gamma(2.0, 0.2, 200), rng.integers(3, 60, 200), 95.0)
    update = threshold_update(calibration, "model@1", "clean.txt")
    channel = UpdateChannelSettings(update_key=KEY)
    publish_update(update, kafka_settings.producer_config(), topic, channel=channel)
    publish_update(update, kafka_settings.producer_config(), topic, channel=UpdateChannelSettings())
    signed, unsigned = (
        e.value for e in read_topic(kafka_settings, TopicRange(topic=topic, idle_timeout=5.0))
    )
    assert verify_update(signed, KEY.encode()) is SignatureCheck.VALID
    assert verify_update(unsigned, KEY.encode()) is SignatureCheck.UNSIGNED
    keyed = UpdateSelector(THRESHOLDS, "model@1", channel.policy())
    threshold, applied = keyed.offer(signed)
    assert threshold.value == update.value and applied.signature is not None
    assert keyed.offer(unsigned) is None and keyed.rejected["unsigned"] == 1


def test_a_bad_key_setting_fails_before_calibrating(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("STREAM_GUARD_UPDATE_KEY", "too-short")
    args = ["calibrate", "-m", str(tmp_path / "no-model"), "-d", str(tmp_path / "none.csv"), "--publish"]
    result = CliRunner().invoke(app, [*args, "-b", "127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "at least 16 bytes" in lines[0] and "too-short" not in lines[0]
