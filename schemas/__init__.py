"""stream-guard's wire contract: the records on every topic, their JSON codec and JSON Schemas.

Every record carries ``schema_version`` (``SCHEMA_VERSION`` when written by this code). Readers ignore
unknown fields and default optional fields that older writers did not write; see
:mod:`schemas.outputs` for the compatibility policy. JSON Schema files for non-Python consumers live in
``schemas/json/`` and are regenerated with ``python -m schemas.generate``.

This package imports only pydantic and orjson (no torch, transformers or confluent_kafka).
"""

from schemas.base import SCHEMA_VERSION, SourceRef, utc_now
from schemas.codec import decode, encode
from schemas.dead_letter import DeadLetterRecord
from schemas.errors import ErrorType, SchemaError
from schemas.input import InputMessage
from schemas.outputs import (
    AuditRecord,
    EvidenceRecord,
    PredictionRecord,
    SuspiciousWordRecord,
    TokenRecord,
    TriggerHitRecord,
)
from schemas.signing import SignatureCheck, canonical_bytes, sign_update, verify_update
from schemas.threshold import (
    CalibrationSummary,
    LearnBar,
    LengthBucket,
    ThresholdUpdate,
    make_threshold_version,
)
from schemas.triggers import KnownTriggerRecord, TriggerUpdate, make_trigger_version, normalize_trigger

__all__ = [
    "SCHEMA_VERSION",
    "AuditRecord",
    "CalibrationSummary",
    "DeadLetterRecord",
    "ErrorType",
    "EvidenceRecord",
    "InputMessage",
    "KnownTriggerRecord",
    "LearnBar",
    "LengthBucket",
    "PredictionRecord",
    "SchemaError",
    "SignatureCheck",
    "SourceRef",
    "SuspiciousWordRecord",
    "ThresholdUpdate",
    "TokenRecord",
    "TriggerHitRecord",
    "TriggerUpdate",
    "canonical_bytes",
    "decode",
    "encode",
    "make_threshold_version",
    "make_trigger_version",
    "normalize_trigger",
    "sign_update",
    "utc_now",
    "verify_update",
]
