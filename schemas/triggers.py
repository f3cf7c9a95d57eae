"""The known-trigger update (triggers topic, and the ``--triggers FILE`` of the commands).

A :class:`TriggerUpdate` carries the **whole** known-trigger set of one model — the words and phrases a
worker removes from every message that holds one — and the words an operator revoked (the learner must
not learn them again). The newest update per ``model_id`` wins, as for thresholds: by ``created_at``,
ties broken by ``version``. A learned trigger carries the evidence that promoted it; one an operator
added has only its text (and, optionally, the label it forces).

Trigger texts are kept in their normal form: NFKC, case-folded, the words (runs of letters and digits,
with inner apostrophes or hyphens) joined by one space, so ``" CF, "`` becomes ``"cf"``. A text is
normalized when the record is built or read; one without any word is rejected. This is the trigger
memory's own normal form (``stream_guard.triggers.phrases``; a test keeps the two in step), written out
here because the wire contract imports nothing of ours.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.base import OutputRecord, Probability, UtcDatetime, WireModel
from schemas.signing import SIGNATURE_PATTERN
from schemas.threshold import make_threshold_version

__all__ = [
    "MAX_TRIGGER_CHARS",
    "KnownTriggerRecord",
    "TriggerText",
    "TriggerUpdate",
    "make_trigger_version",
    "normalize_trigger",
]

MAX_TRIGGER_CHARS = 256
"""Longest trigger text accepted (before normalization)."""

_WORD = re.compile(r"\w+(?:['’\-]\w+)*")


def normalize_trigger(text: str) -> str:
    """The normal form of a word or phrase: its words NFKC-normalized, case-folded, joined by one
    space ("" when it has no word)."""
    return " ".join(unicodedata.normalize("NFKC", m.group()).casefold() for m in _WORD.finditer(text))


def _normal_form(value: str) -> str:
    normal = normalize_trigger(value)
    if not normal:
        raise PydanticCustomError("empty_trigger", "a trigger needs at least one word (letters or digits)")
    return normal


TriggerText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TRIGGER_CHARS, json_schema_extra={"pattern": r"\w"}),
    AfterValidator(_normal_form),
]
"""A word or phrase, stored in its normal form (see the module docstring)."""

TriggerSource = Literal["learned", "operator"]


class KnownTriggerRecord(WireModel):
    """One known trigger and, when it was learned, the evidence that promoted it.

    ``target_label`` is the label it forces (None when unknown, e.g. added by an operator without one).
    The evidence fields are those of the learner's promotion: ``nominated_by`` says what put it forward
    — ``"flips"``: ``flips`` confirmed flips towards ``target_label`` from ``messages`` distinct messages
    (``probes`` of them probes); ``"recurrence"``: it came in ``messages`` messages, far more often than
    its clean rate explains (``flips`` then counts the flips seen by then, often 0); ``"attribution"``:
    it was the top-ranked word of a high-scoring message and tested on first sight — first and last
    seen at ``first_seen`` / ``last_seen``; the insertion test turned ``insertion_rate`` of
    ``insertion_texts`` clean non-target texts to the target; ``clean_rate`` is the share of clean
    calibration texts holding it; ``learned_at`` when it was promoted. All None for operator triggers.
    """

    text: TriggerText
    target_label: int | None = Field(default=None, ge=0)
    source: TriggerSource = "operator"
    nominated_by: Literal["flips", "recurrence", "attribution"] | None = None
    flips: int | None = Field(default=None, ge=0)
    messages: int | None = Field(default=None, ge=0)
    probes: int | None = Field(default=None, ge=0)
    first_seen: UtcDatetime | None = None
    last_seen: UtcDatetime | None = None
    insertion_rate: Probability | None = None
    insertion_texts: int | None = Field(default=None, ge=0)
    clean_rate: Probability | None = None
    learned_at: UtcDatetime | None = None


class TriggerUpdate(OutputRecord):
    """The known-trigger set of one model, whole (see the module docstring).

    ``triggers`` hold distinct texts; ``revoked`` lists words and phrases an operator revoked: none of
    them is in ``triggers``, and the learner must not learn them again.
    """

    model_id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    created_at: UtcDatetime
    triggers: list[KnownTriggerRecord] = Field(default_factory=list)
    revoked: list[TriggerText] = Field(default_factory=list)
    # HMAC-SHA256 of the other fields (schemas.signing); None: unsigned (a worker with a key refuses it)
    signature: str | None = Field(default=None, pattern=SIGNATURE_PATTERN)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen: set[str] = set()
        for trigger in self.triggers:
            if trigger.text in seen:
                raise ValueError(f"trigger {trigger.text!r} is listed twice")
            seen.add(trigger.text)
        if len(set(self.revoked)) != len(self.revoked):
            raise ValueError("a revoked trigger is listed twice")
        both = sorted(seen.intersection(self.revoked))
        if both:
            raise ValueError(f"revoked and known at once: {', '.join(map(repr, both))}")
        return self

    def texts(self) -> list[str]:
        """The known triggers' texts, in order."""
        return [t.text for t in self.triggers]


def make_trigger_version(created_at: datetime, *parts: object) -> str:
    """A unique, sortable version string, as :func:`schemas.make_threshold_version` makes them
    (UTC timestamp + short hash of ``parts``), e.g. of the model id and the trigger texts."""
    return make_threshold_version(created_at, "triggers", *parts)
