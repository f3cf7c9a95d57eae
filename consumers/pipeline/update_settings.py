"""Settings of the update channel (thresholds and triggers topics): the signing key, the skew bound,
the operator's threshold bounds. pydantic-settings, from ``STREAM_GUARD_*`` environment variables::

    STREAM_GUARD_UPDATE_KEY=...                   # shared HMAC key (>= 16 bytes), or:
    STREAM_GUARD_UPDATE_KEY_FILE=/run/secrets/stream-guard-update-key
    STREAM_GUARD_UPDATE_MAX_SKEW_S=300            # refuse updates dated further ahead of this clock
    STREAM_GUARD_THRESHOLD_MIN=0.0                # refuse thresholds outside [min, max] (unset: no bound)
    STREAM_GUARD_THRESHOLD_MAX=50.0
    STREAM_GUARD_MAX_KNOWN_TRIGGERS=10000         # refuse larger trigger sets

Publishers (``stream-guard calibrate --publish``, ``triggers add | revoke | publish``, ``triggers learn``)
sign what they publish with :meth:`UpdateChannelSettings.sign` when a key is set; workers given a key
apply only updates signed with it (:meth:`UpdateChannelSettings.policy`). The key is a secret: it never
appears in ``repr``, ``str``, dumps or error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self, TypeVar

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.pipeline.update_policy import DEFAULT_MAX_SKEW_S, UpdatePolicy
from schemas import sign_update

__all__ = ["MIN_KEY_BYTES", "UpdateChannelError", "UpdateChannelSettings", "update_channel_from_env"]

MIN_KEY_BYTES = 16
_MAX_KEY_FILE_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)


class UpdateChannelSettings(BaseSettings):
    """How updates are signed and which are applied (see the module docstring)."""

    # errors never echo their input: it may be the key
    model_config = SettingsConfigDict(env_prefix="STREAM_GUARD_", extra="ignore", hide_input_in_errors=True)

    update_key: SecretStr | None = Field(None, description="shared HMAC-SHA256 key of signed updates")
    update_key_file: Path | None = Field(None, description="a file holding the key (whitespace stripped)")
    update_max_skew_s: float = Field(
        DEFAULT_MAX_SKEW_S, ge=0, allow_inf_nan=False, description="largest created_at ahead of the clock"
    )
    threshold_min: float | None = Field(None, allow_inf_nan=False, description="lowest threshold applied")
    threshold_max: float | None = Field(None, allow_inf_nan=False, description="highest threshold applied")
    max_known_triggers: int | None = Field(10_000, ge=0, description="largest trigger set applied")

    _key: bytes | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load_key(self) -> Self:
        low, high = self.threshold_min, self.threshold_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"threshold_min {low:g} is above threshold_max {high:g}")
        key_text = self.update_key.get_secret_value() if self.update_key is not None else ""
        if key_text and self.update_key_file is not None:
            raise ValueError("set STREAM_GUARD_UPDATE_KEY or STREAM_GUARD_UPDATE_KEY_FILE, not both")
        if self.update_key_file is not None:
            key = _read_key_file(self.update_key_file)
        elif key_text:
            key = key_text.strip().encode()
        else:
            return self
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the update key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key
        return self

    @property
    def signed(self) -> bool:
        """Whether a key is set (updates are signed, and only signed ones are applied)."""
        return self._key is not None

    def signing_key(self) -> bytes | None:
        """The key (bytes), or None when updates are not signed."""
        return self._key

    def policy(self) -> UpdatePolicy:
        """The rules a worker (or an operator command reading the topic) applies updates by."""
        return UpdatePolicy(
            key=self._key,
            max_skew_s=self.update_max_skew_s,
            threshold_min=self.threshold_min,
            threshold_max=self.threshold_max,
            max_known_triggers=self.max_known_triggers,
        )

    def sign(self, update: M) -> M:
        """``update`` signed with the key; unchanged (unsigned) when no key is set."""
        return update if self._key is None else sign_update(update, self._key)


def _read_key_file(path: Path) -> bytes:
    try:
        with path.expanduser().open("rb") as fh:
            data = fh.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read the update key file {path}: {error.strerror or error}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ValueError(f"the update key file {path} is over {_MAX_KEY_FILE_BYTES} bytes")
    return data.strip()


class UpdateChannelError(ValueError):
    """The update channel's settings are unusable (e.g. a short key); the message is one line, no secret."""


def update_channel_from_env() -> UpdateChannelSettings:
    """:class:`UpdateChannelSettings` from the environment; raises :class:`UpdateChannelError` (one line)
    instead of pydantic's multi-line error."""
    try:
        return UpdateChannelSettings()
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        field = f" {where}" if where else ""
        raise UpdateChannelError(f"invalid update channel setting{field}: {message}") from None
