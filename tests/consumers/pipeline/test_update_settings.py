"""The update channel's settings (consumers/pipeline/update_settings.py): the key from the environment or
a file, never shown; the skew and the operator's bounds; one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.pipeline.update_settings import (
    UpdateChannelError,
    UpdateChannelSettings,
    update_channel_from_env,
)
from consumers.worker.settings import WorkerSettings
from schemas import CalibrationSummary, SignatureCheck, ThresholdUpdate, encode, verify_update

SECRET = "correct-horse-battery-staple-42"
ENV = (
    "STREAM_GUARD_UPDATE_KEY",
    "STREAM_GUARD_UPDATE_KEY_FILE",
    "STREAM_GUARD_UPDATE_MAX_SKEW_S",
    "STREAM_GUARD_THRESHOLD_MIN",
    "STREAM_GUARD_THRESHOLD_MAX",
    "STREAM_GUARD_MAX_KNOWN_TRIGGERS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def _update() -> ThresholdUpdate:
    summary = CalibrationSummary(dataset="d", n_texts=10, score_mean=1.0, score_std=0.5)
    return ThresholdUpdate(
        model_id="m",
        version="v",
        value=1.2,
        percentile=95.0,
        calibration=summary,
        created_at=datetime.now(UTC),
    )


def test_defaults_sign_nothing_and_bound_the_skew():
    settings = UpdateChannelSettings()
    assert not settings.signed and settings.signing_key() is None
    update = _update()
    assert settings.sign(update) is update
    policy = settings.policy()
    assert policy.key is None and policy.max_skew_s == 300 and policy.check_summary
    assert (policy.threshold_min, policy.threshold_max) == (None, None)


def test_the_environment_sets_key_skew_and_bounds(monkeypatch):
    monkeypatch.setenv("STREAM_GUARD_UPDATE_KEY", SECRET)
    monkeypatch.setenv("STREAM_GUARD_UPDATE_MAX_SKEW_S", "30")
    monkeypatch.setenv("STREAM_GUARD_THRESHOLD_MIN", "0")
    monkeypatch.setenv("STREAM_GUARD_THRESHOLD_MAX", "50")
    monkeypatch.setenv("STREAM_GUARD_MAX_KNOWN_TRIGGERS", "100")
    settings = update_channel_from_env()
    policy = settings.policy()
    assert policy.key == SECRET.encode() and policy.max_skew_s == 30
    assert (policy.threshold_min, policy.threshold_max, policy.max_known_triggers) == (0, 50, 100)
    signed = settings.sign(_update())
    assert verify_update(encode(signed), SECRET.encode()) is SignatureCheck.VALID
    # the worker reads the same variables
    assert WorkerSettings().update_channel.policy() == policy


def test_the_key_can_come_from_a_file(tmp_path, monkeypatch):
    path = tmp_path / "key"
    path.write_text(SECRET + "\n")
    monkeypatch.setenv("STREAM_GUARD_UPDATE_KEY_FILE", str(path))
    assert update_channel_from_env().signing_key() == SECRET.encode()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"STREAM_GUARD_UPDATE_KEY": "too-short"}, "at least 16 bytes"),
        ({"STREAM_GUARD_UPDATE_KEY": SECRET, "STREAM_GUARD_UPDATE_KEY_FILE": "/x"}, "not both"),
        ({"STREAM_GUARD_UPDATE_KEY_FILE": "/nonexistent/key"}, "cannot read the update key file"),
        ({"STREAM_GUARD_THRESHOLD_MIN": "5", "STREAM_GUARD_THRESHOLD_MAX": "1"}, "above threshold_max"),
        ({"STREAM_GUARD_THRESHOLD_MAX": "nan"}, "threshold_max"),
        ({"STREAM_GUARD_UPDATE_MAX_SKEW_S": "-1"}, "update_max_skew_s"),
    ],
)
def test_bad_settings_are_one_line_without_the_key(monkeypatch, env, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UpdateChannelError) as caught:
        update_channel_from_env()
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert "too-short" not in message and SECRET not in message


def test_the_key_never_shows_in_repr_dumps_or_validation_errors(monkeypatch):
    monkeypatch.setenv("STREAM_GUARD_UPDATE_KEY", SECRET)
    settings = UpdateChannelSettings()
    assert SECRET not in repr(settings) + str(settings) + settings.model_dump_json()
    assert SECRET not in repr(settings.policy()) + repr(WorkerSettings())
    monkeypatch.setenv("STREAM_GUARD_UPDATE_KEY", "short-secret-x")
    with pytest.raises(ValueError) as caught:
        UpdateChannelSettings()
    assert "short-secret-x" not in str(caught.value)


def test_the_worker_settings_fail_with_the_same_one_line(monkeypatch):
    monkeypatch.setenv("STREAM_GUARD_UPDATE_KEY", "too-short")
    with pytest.raises(UpdateChannelError, match=r"^invalid update channel setting: the update key must be"):
        WorkerSettings()
