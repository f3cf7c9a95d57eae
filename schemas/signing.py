"""Signed updates: an HMAC-SHA256 over a canonical encoding of a threshold or trigger update.

The thresholds and triggers topics steer the defense (a threshold of 1e308 switches it off, a trigger
set holding "the" rewrites every message), so a worker given a key applies only updates signed with it.
The field ``signature`` is optional: a writer without a key leaves it out (``null``) and a worker without
a key ignores it, as before signatures existed.

Canonical encoding (what the signature covers)
    The update's JSON object **as written on the wire**, without its ``signature`` member, serialized
    with object keys sorted (at every level), no whitespace, strings as UTF-8 (not ``\\u``-escaped), and
    numbers as the shortest text that reads back as the same double (``0.1``, ``1e-07``, ``100.0`` —
    what orjson writes; a float written as an integer stays an integer). A reader computes it from the
    bytes it received: parse the JSON, drop ``signature``, re-serialize. Members it does not know (a
    newer writer's fields) are covered too, so a signature stays valid across schema versions.

Signature
    ``"hmac-sha256:" + hex(HMAC-SHA256(key, canonical))``, 64 lowercase hex digits. The prefix names the
    algorithm so that another one (e.g. Ed25519) can be added later without a new field.

Only the codec of this package is imported; the key is the caller's (never logged here).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from schemas.codec import encode

__all__ = [
    "HMAC_SHA256",
    "SIGNATURE_PATTERN",
    "SignatureCheck",
    "canonical_bytes",
    "sign_update",
    "update_signature",
    "verify_update",
]

HMAC_SHA256 = "hmac-sha256"
SIGNATURE_PATTERN = r"^[a-z0-9-]{1,32}:[A-Za-z0-9+/=_-]{1,512}$"
"""What a ``signature`` field may hold: ``algorithm:value``. Readers accept algorithms they do not know
(the field still decodes) and treat them as a bad signature when they verify."""

M = TypeVar("M", bound=BaseModel)


class SignatureCheck(StrEnum):
    """The outcome of :func:`verify_update`."""

    VALID = "valid"
    UNSIGNED = "unsigned"
    INVALID = "bad_signature"


def canonical_bytes(payload: Mapping[str, Any]) -> bytes:
    """The canonical encoding of an update's JSON object (see the module docstring)."""
    body = {name: value for name, value in payload.items() if name != "signature"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def update_signature(payload: Mapping[str, Any], key: bytes) -> str:
    """``hmac-sha256:<hex>`` of the canonical encoding of ``payload`` under ``key``."""
    digest = hmac.new(key, canonical_bytes(payload), hashlib.sha256).hexdigest()
    return f"{HMAC_SHA256}:{digest}"


def sign_update(update: M, key: bytes) -> M:
    """A copy of ``update`` whose ``signature`` covers what :func:`schemas.encode` writes for it."""
    payload = orjson.loads(encode(update.model_copy(update={"signature": None})))
    return update.model_copy(update={"signature": update_signature(payload, key)})


def verify_update(data: bytes | Mapping[str, Any], key: bytes) -> SignatureCheck:
    """Whether the update in ``data`` (its wire bytes, or the parsed JSON object) is signed with ``key``.

    Bytes that are not a JSON object are :attr:`SignatureCheck.INVALID`; a missing or null
    ``signature`` is :attr:`SignatureCheck.UNSIGNED`. The comparison takes constant time."""
    if isinstance(data, Mapping):
        payload: Any = data
    else:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return SignatureCheck.INVALID
    if not isinstance(payload, Mapping):
        return SignatureCheck.INVALID
    given = payload.get("signature")
    if given is None:
        return SignatureCheck.UNSIGNED
    if not isinstance(given, str):
        return SignatureCheck.INVALID
    expected = update_signature(payload, key)
    return SignatureCheck.VALID if hmac.compare_digest(given, expected) else SignatureCheck.INVALID
