"""Signed updates (schemas/signing.py): the canonical encoding, signing and verifying, on both update kinds.

The signature covers the update's JSON object as written (without ``signature``): key order and
whitespace do not matter, every value does, unknown members too; the field stays optional."""

from __future__ import annotations

import orjson
import pytest

from schemas import (
    SignatureCheck,
    ThresholdUpdate,
    TriggerUpdate,
    canonical_bytes,
    decode,
    encode,
    sign_update,
    verify_update,
)
from schemas.signing import update_signature

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


@pytest.fixture(params=["threshold_update", "trigger_update"])
def update(request: pytest.FixtureRequest) -> ThresholdUpdate | TriggerUpdate:
    return request.getfixturevalue(request.param)


def test_a_signed_update_verifies_and_reads_back_with_its_signature(update):
    signed = sign_update(update, KEY)
    assert signed.signature is not None and signed.signature.startswith("hmac-sha256:")
    assert len(signed.signature.split(":", 1)[1]) == 64
    raw = encode(signed)
    assert verify_update(raw, KEY) is SignatureCheck.VALID
    read = decode(type(update), raw)
    assert read == signed and verify_update(encode(read), KEY) is SignatureCheck.VALID
    assert update.signature is None  # signing makes a copy


def test_wrong_key_unsigned_and_tampered_updates_do_not_verify(update):
    raw = encode(sign_update(update, KEY))
    assert verify_update(raw, OTHER_KEY) is SignatureCheck.INVALID
    assert verify_update(encode(update), KEY) is SignatureCheck.UNSIGNED
    tampered = orjson.loads(raw)
    tampered["model_id"] = "someone-else"
    assert verify_update(orjson.dumps(tampered), KEY) is SignatureCheck.INVALID
    moved = orjson.loads(raw)
    moved["created_at"] = "2100-01-01T00:00:00Z"
    assert verify_update(orjson.dumps(moved), KEY) is SignatureCheck.INVALID


def test_key_order_and_whitespace_do_not_matter_but_unknown_members_are_covered(update):
    raw = encode(sign_update(update, KEY))
    payload = orjson.loads(raw)
    reordered = dict(reversed(list(payload.items())))
    pretty = orjson.dumps(reordered, option=orjson.OPT_INDENT_2)
    assert verify_update(pretty, KEY) is SignatureCheck.VALID
    assert canonical_bytes(reordered) == canonical_bytes(payload)
    # a newer writer's field is signed like any other: an older reader still verifies it...
    newer = {**payload, "rollout": {"zone": "eu", "share": 0.5}}
    newer["signature"] = update_signature(newer, KEY)
    assert verify_update(orjson.dumps(newer), KEY) is SignatureCheck.VALID
    # ...and nobody can add one to a signed update
    assert verify_update(orjson.dumps({**payload, "rollout": 1}), KEY) is SignatureCheck.INVALID


def test_a_value_changed_by_one_ulp_breaks_the_signature(threshold_update):
    payload = orjson.loads(encode(sign_update(threshold_update, KEY)))
    payload["value"] = 2.0000000000000004
    assert verify_update(orjson.dumps(payload), KEY) is SignatureCheck.INVALID


@pytest.mark.parametrize(
    "raw", [b"not json", b"[1, 2]", b'{"signature": 5}', b'{"signature": "hmac-sha256:00"}', b"null"]
)
def test_garbage_is_never_valid(raw):
    assert verify_update(raw, KEY) is SignatureCheck.INVALID


def test_records_without_the_field_still_decode_and_the_field_is_bounded(threshold_update):
    payload = orjson.loads(encode(threshold_update))
    del payload["signature"]
    assert decode(ThresholdUpdate, orjson.dumps(payload)).signature is None
    with pytest.raises(ValueError, match="signature"):
        ThresholdUpdate.model_validate({**payload, "signature": "x" * 2000})
    # an algorithm this reader does not know still decodes (and does not verify)
    other = {**payload, "signature": "ed25519:" + "A" * 86}
    assert decode(ThresholdUpdate, orjson.dumps(other)).signature == other["signature"]
    assert verify_update(orjson.dumps(other), KEY) is SignatureCheck.INVALID
