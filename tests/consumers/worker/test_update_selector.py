"""The selection rule with the worker's policy (consumers/worker/update_selector.py): a bad update —
malformed, future-dated, out of range, unsigned or wrongly signed — is ignored and counted by reason,
the last good one stays, and a later good update still wins (nothing pins the ordering)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from consumers.pipeline.update_policy import UpdatePolicy
from consumers.worker.update_listener import THRESHOLDS, TRIGGERS, UpdateSelector
from schemas import (
    CalibrationSummary,
    KnownTriggerRecord,
    ThresholdUpdate,
    TriggerUpdate,
    encode,
    sign_update,
)

KEY = b"shared-secret-key-0123456789"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SUMMARY = CalibrationSummary(
    dataset="d",
    n_texts=500,
    score_mean=0.4,
    score_std=0.2,
    score_min=0.05,
    score_max=1.6,
    quantiles={"50": 0.35, "90": 0.65, "95": 0.8, "99": 1.1},
)


def _threshold(version: str, minutes: float, value: float = 0.8, **changes: object) -> ThresholdUpdate:
    fields: dict[str, object] = {
        "model_id": "m@1",
        "version": version,
        "value": value,
        "percentile": 95.0,
        "calibration": SUMMARY,
        "created_at": NOW + timedelta(minutes=minutes),
    }
    return ThresholdUpdate(**{**fields, **changes})  # type: ignore[arg-type]


def _triggers(version: str, minutes: float, *texts: str) -> TriggerUpdate:
    return TriggerUpdate(
        model_id="m@1",
        version=version,
        created_at=NOW + timedelta(minutes=minutes),
        triggers=[KnownTriggerRecord(text=t) for t in texts],
    )


def _selector(kind, policy: UpdatePolicy, reasons: list[str]) -> UpdateSelector:
    return UpdateSelector(kind, "m@1", policy, on_reject=reasons.append, clock=lambda: NOW)


def test_bad_threshold_updates_are_ignored_and_the_last_good_one_stays():
    reasons: list[str] = []
    selector = _selector(THRESHOLDS, UpdatePolicy(), reasons)
    assert selector.offer(encode(_threshold("good-1", -10)))[1].version == "good-1"
    malformed = orjson.loads(encode(_threshold("nan", -5)))
    bad = [
        b"not json",
        orjson.dumps(malformed)[:-10],
        encode(_threshold("v-minus-5", -5, value=-5.0)),
        encode(_threshold("v-1e308", -5, value=1e308)),
        encode(_threshold("v-2100", 0, created_at=datetime(2100, 1, 1, tzinfo=UTC))),
        encode(_threshold("v-past-skew", 6)),  # 6 minutes ahead of the clock: over the 300 s skew
        encode(_threshold("older", -20)),
        encode(_threshold("other", -5, model_id="other@9")),
    ]
    for raw in bad:
        assert selector.offer(raw) is None
    assert selector.offer(b'{"model_id": "m@1", "value": NaN}') is None
    assert selector.best.version == "good-1"
    assert reasons == [
        "invalid",
        "invalid",
        "out_of_range",
        "out_of_range",
        "future",
        "future",
        "not_newer",
        "other_model",
        "invalid",
    ]
    assert selector.rejected["future"] == 2
    # the 2100 update pinned nothing: the next good update applies
    assert selector.offer(encode(_threshold("good-2", 1, value=0.81, percentile=96.0)))[0].value == 0.81


def test_with_a_key_unsigned_and_wrongly_signed_updates_are_ignored():
    reasons: list[str] = []
    selector = _selector(THRESHOLDS, UpdatePolicy(key=KEY), reasons)
    assert selector.offer(encode(_threshold("unsigned", -10))) is None
    assert selector.offer(encode(sign_update(_threshold("wrong", -9), b"x" * 32))) is None
    tampered = orjson.loads(encode(sign_update(_threshold("tampered", -8), KEY)))
    tampered["value"] = 1e308
    assert selector.offer(orjson.dumps(tampered)) is None
    assert selector.best is None and reasons == ["unsigned", "bad_signature", "bad_signature"]
    signed = sign_update(_threshold("signed", -7), KEY)
    assert selector.offer(encode(signed))[1].version == "signed"
    # signed but dated 2100, or signed but out of range: still refused
    assert (
        selector.offer(encode(sign_update(_threshold("s2100", 0, created_at=datetime(2100, 1, 1)), KEY)))
        is None
    )
    assert selector.offer(encode(sign_update(_threshold("s-5", -1, value=-5.0), KEY))) is None
    assert reasons[-2:] == ["future", "out_of_range"] and selector.best.version == "signed"


def test_bad_trigger_updates_are_ignored_and_the_last_good_set_stays():
    reasons: list[str] = []
    selector = _selector(TRIGGERS, UpdatePolicy(key=KEY, max_known_triggers=3), reasons)
    assert selector.offer(encode(sign_update(_triggers("t1", -10, "cf"), KEY)))[0].version == "t1"
    bad = [
        encode(_triggers("unsigned", -5, "the")),
        encode(sign_update(_triggers("wrong-key", -5, "the"), b"y" * 32)),
        encode(
            sign_update(
                _triggers("t2100", 0, "the").model_copy(
                    update={"created_at": datetime(2100, 1, 1, tzinfo=UTC)}
                ),
                KEY,
            )
        ),
        encode(sign_update(_triggers("too-many", -5, "a1", "a2", "a3", "a4"), KEY)),
        orjson.dumps(
            {"model_id": "m@1", "version": "x", "created_at": "2026-01-01", "triggers": [{"text": "!"}]}
        ),
    ]
    for raw in bad:
        assert selector.offer(raw) is None
    assert reasons == ["unsigned", "bad_signature", "future", "out_of_range", "invalid"]
    assert selector.best.version == "t1"
    applied = selector.offer(encode(sign_update(_triggers("t2", -1, "cf", "mn"), KEY)))[0]
    assert [t.text for t in applied.triggers] == ["cf", "mn"]


@pytest.mark.parametrize("kind", [THRESHOLDS, TRIGGERS])
def test_the_default_policy_is_the_ordering_alone(kind):
    selector = UpdateSelector(kind, "m@1")
    far = datetime(2100, 1, 1, tzinfo=UTC)
    update = _threshold("far", 0, created_at=far) if kind is THRESHOLDS else _triggers("far", 0, "cf")
    update = update.model_copy(update={"created_at": far})
    assert selector.offer(encode(update)) is not None  # display-only readers see what is there
