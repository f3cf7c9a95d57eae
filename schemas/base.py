"""Building blocks shared by every wire record: the version, the base model, common field types.

Wire models ignore unknown fields (``extra="ignore"``) so that a reader keeps working when a newer
writer adds fields, and reject NaN/inf floats (JSON cannot carry them: orjson would silently write
``null``). Datetimes are normalised to UTC: an aware value is converted, a naive one is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SCHEMA_VERSION: int = 1
"""Version of the wire contract written by this code. Bump it whenever a record's shape changes."""


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A datetime normalised to UTC (naive values are taken as UTC)."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor ±inf."""

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""A finite float in [0, 1]."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _require_schema_version(schema: dict[str, Any]) -> None:
    """JSON Schema hook for output records: writers always emit ``schema_version``."""
    required = schema.setdefault("required", [])
    if "schema_version" not in required:
        required.insert(0, "schema_version")


class WireModel(BaseModel):
    """Base of every wire model: unknown fields ignored, non-finite floats rejected."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class OutputRecord(WireModel):
    """Base of the records this system writes (predictions, audit, dead letters, thresholds).

    ``schema_version`` defaults to the current version when a record is built in Python; it is
    always written, so the JSON Schema lists it as required.
    """

    model_config = ConfigDict(json_schema_extra=_require_schema_version)

    schema_version: int = Field(default=SCHEMA_VERSION, ge=0)


class SourceRef(WireModel):
    """Where a record came from: the Kafka coordinates of the input message.

    Each field is ``None`` when unknown; records produced from file input carry ``source=None``.
    """

    topic: str | None = None
    partition: int | None = Field(default=None, ge=0)
    offset: int | None = Field(default=None, ge=0)
    key: str | None = None

    @classmethod
    def from_kafka(
        cls, topic: str | None, partition: int | None, offset: int | None, key: bytes | None
    ) -> SourceRef:
        """Build from a Kafka message's coordinates; the raw key is decoded as UTF-8 (bad bytes → U+FFFD)."""
        text_key = key.decode("utf-8", errors="replace") if key is not None else None
        return cls(topic=topic, partition=partition, offset=offset, key=text_key)
