"""Which updates a worker may apply (consumers/pipeline/update_policy.py, update_sanity.py): signature,
clock skew, and values the update's own calibration summary and the operator's bounds support. What
`stream-guard calibrate` writes always passes; −5, 1e308 and the like never do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from consumers.calibrate.job import threshold_update
from consumers.pipeline.update_policy import ORDERING_ONLY, UpdatePolicy
from consumers.pipeline.update_sanity import supported_range, threshold_problem
from schemas import CalibrationSummary, LengthBucket, ThresholdUpdate, TriggerUpdate, encode, sign_update
from schemas.triggers import KnownTriggerRecord
from stream_guard.calibration import calibration_from_scores

KEY = b"shared-secret-key-0123456789"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _calibrated(percentile: float = 95.0, edges: list[int] | None = None, seed: int = 0) -> ThresholdUpdate:
    """A ThresholdUpdate exactly as `stream-guard calibrate` builds it, from 400 clean scores."""
    rng = np.random.default_rng(seed)
    scores = rng.gamma(2.0, 0.15, 400) + 0.05
    n_tokens = rng.integers(4, 90, 400)
    calibration = calibration_from_scores(scores, n_tokens, percentile, length_edges=edges)
    return threshold_update(calibration, "model@1", "clean.txt")


def _with(update: ThresholdUpdate, **changes: object) -> ThresholdUpdate:
    return update.model_copy(update=changes)


# -- what calibrate writes passes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percentile", "edges"), [(95.0, None), (80.0, None), (99.5, [16, 32, 64]), (65.0, [8])]
)
def test_every_calibrate_output_passes(percentile, edges):
    update = _calibrated(percentile, edges)
    assert update.calibration.score_min is not None and update.calibration.score_max is not None
    assert UpdatePolicy().sane(update) is None
    # an older summary (no min/max) is checked by Samuelson's bound and the quantiles instead
    old = _with(
        update, calibration=update.calibration.model_copy(update={"score_min": None, "score_max": None})
    )
    assert UpdatePolicy().sane(old) is None


# -- values the summary cannot support --------------------------------------------------------------


@pytest.mark.parametrize("value", [-5.0, 1e308, -1e308, 0.0, 1e6])
def test_values_outside_the_clean_scores_are_out_of_range(value):
    update = _with(_calibrated(), value=value)
    rejection = UpdatePolicy().sane(update)
    assert rejection is not None and rejection.reason == "out_of_range"
    assert f"{value:g}" in rejection.detail


def test_a_bucket_value_outside_the_clean_scores_is_out_of_range():
    update = _calibrated(95.0, [16, 32, 64])
    buckets = [*update.by_length[:-1], LengthBucket(max_tokens=update.by_length[-1].max_tokens, value=-5.0)]
    assert UpdatePolicy().sane(_with(update, by_length=buckets)) is not None


def test_without_min_and_max_the_quantiles_around_the_percentile_bound_the_value():
    update = _calibrated(95.0)
    summary = update.calibration.model_copy(update={"score_min": None, "score_max": None})
    quantiles = summary.quantiles
    assert update.value == quantiles["95"]
    # inside Samuelson's bound, but not the 95th percentile its summary states: refused
    low, high = supported_range(summary)
    assert low < quantiles["50"] - 0.01 and high > quantiles["99"] + 0.01
    for wrong in (quantiles["50"], quantiles["99"] + 0.01, -5.0):
        assert threshold_problem(_with(update, calibration=summary, value=wrong)) is not None
    # an 80th percentile lies between the 50th and the 90th
    p80 = _with(update, calibration=summary, percentile=80.0, value=(quantiles["50"] + quantiles["90"]) / 2)
    assert threshold_problem(p80) is None


def test_samuelson_bounds_a_summary_without_min_and_max():
    summary = CalibrationSummary(dataset="d", n_texts=10, score_mean=1.0, score_std=0.5)
    assert supported_range(summary) == pytest.approx((1.0 - 1.5, 1.0 + 1.5))
    update = ThresholdUpdate(
        model_id="m", version="v", value=2.4, percentile=95.0, calibration=summary, created_at=NOW
    )
    assert threshold_problem(update) is None
    assert threshold_problem(_with(update, value=2.6)) is not None
    assert threshold_problem(_with(update, value=1e308)) is not None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"score_min": 2.0, "score_max": 1.0}, "score_min"),
        ({"score_mean": 99.0}, "mean"),
        ({"score_std": 50.0}, "std"),
        ({"quantiles": {"50": 0.5, "95": 0.2}}, "decrease"),
        ({"quantiles": {"50": 0.3, "95": 99.0}}, "p95"),
        ({"quantiles": {"median": 0.3}}, "not a percentile"),
    ],
)
def test_a_summary_that_contradicts_itself_supports_nothing(changes, words):
    update = _calibrated()
    broken = _with(update, calibration=update.calibration.model_copy(update=changes))
    rejection = UpdatePolicy().sane(broken)
    assert rejection is not None and words in rejection.detail


def test_nan_cannot_reach_the_check_and_is_refused_if_it_does():
    with pytest.raises(ValueError):
        _calibrated().model_validate({**_calibrated().model_dump(), "value": float("nan")})
    built = ThresholdUpdate.model_construct(**{**_calibrated().model_dump(), "value": float("nan")})
    assert threshold_problem(built) == "value is not finite"


def test_operator_bounds_apply_with_or_without_the_summary_check():
    update = _calibrated()
    assert UpdatePolicy(threshold_min=0.0, threshold_max=10.0).sane(update) is None
    for policy in (
        UpdatePolicy(threshold_max=update.value / 2),
        UpdatePolicy(threshold_min=update.value * 2),
    ):
        rejection = policy.sane(update)
        assert rejection is not None and "operator" in rejection.detail
    unchecked = UpdatePolicy(check_summary=False, threshold_min=0.0)
    assert unchecked.sane(_with(update, value=1e6)) is None
    assert unchecked.sane(_with(update, value=-5.0)) is not None


def test_a_trigger_set_larger_than_the_limit_is_out_of_range():
    triggers = [KnownTriggerRecord(text=f"w{i}") for i in range(5)]
    update = TriggerUpdate(model_id="m", version="v", created_at=NOW, triggers=triggers)
    assert UpdatePolicy(max_known_triggers=5).sane(update) is None
    rejection = UpdatePolicy(max_known_triggers=4).sane(update)
    assert rejection is not None and rejection.reason == "out_of_range"


# -- time ------------------------------------------------------------------------------------------


def test_an_update_dated_beyond_the_skew_is_from_the_future():
    policy = UpdatePolicy(max_skew_s=300)
    assert policy.timely(NOW + timedelta(seconds=299), NOW) is None
    assert policy.timely(NOW - timedelta(days=365), NOW) is None
    rejection = policy.timely(datetime(2100, 1, 1, tzinfo=UTC), NOW)
    assert rejection is not None and rejection.reason == "future" and "2100" in rejection.detail
    assert policy.timely(NOW + timedelta(seconds=301), NOW) is not None
    assert ORDERING_ONLY.timely(datetime(2100, 1, 1, tzinfo=UTC), NOW) is None


# -- signatures ------------------------------------------------------------------------------------


def test_with_a_key_only_updates_signed_with_it_are_authentic():
    update = _calibrated()
    policy = UpdatePolicy(key=KEY)
    assert policy.signed and policy.authentic(encode(sign_update(update, KEY))) is None
    unsigned = policy.authentic(encode(update))
    assert unsigned is not None and unsigned.reason == "unsigned"
    wrong = policy.authentic(encode(sign_update(update, b"another-key-of-enough-bytes")))
    assert wrong is not None and wrong.reason == "bad_signature"
    assert policy.authentic(None) is not None and policy.authentic(b"junk") is not None


def test_without_a_key_signatures_are_not_required_and_the_key_never_shows():
    update = _calibrated()
    assert UpdatePolicy().authentic(encode(update)) is None
    assert UpdatePolicy().authentic(encode(sign_update(update, KEY))) is None
    assert KEY.decode() not in repr(UpdatePolicy(key=KEY))
