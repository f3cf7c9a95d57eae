"""Verdict records: ``PredictionRecord`` (predictions topic) and ``AuditRecord`` (audit topic).

Compatibility policy (readers, the audit consumer first of all, must read every version ever written):

* ``schema_version`` is stamped on every record (``SCHEMA_VERSION`` when built here). Readers accept
  any version, older or newer, and do not branch on it unless a field's meaning changed.
* Changes within the contract are additive: a new field is optional with a default, so a record written
  before the field existed still parses (it gets the default). Fields are never renamed or retyped in
  place; a field that must change gets a new name and the old one is left to be ignored.
* Unknown fields are ignored, so an older reader can read a record from a newer writer.
* Required fields are only those present since version 0: ``id``, ``model_id``, ``label``, ``label_name``,
  ``probabilities``, ``anomaly_score``, ``final_label``, ``final_label_name``, ``n_tokens``,
  ``scored_at`` (and, on the audit record, ``text``). Everything else has a default.

Scores are finite floats (JSON has no NaN/inf); probabilities lie in [0, 1]; labels index
``probabilities``; datetimes are UTC. Build records from plain Python numbers or numpy scalars
(``tensor.tolist()``), e.g. ``AuditRecord(**fields, scored_at=utc_now())`` or
``AuditRecord.model_validate(a_dict)``.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from schemas.base import FiniteFloat, OutputRecord, Probability, SourceRef, UtcDatetime, WireModel


def _check_label(label: int | None, probabilities: list[float] | None, name: str) -> None:
    if label is None or probabilities is None:
        return
    if not 0 <= label < len(probabilities):
        raise ValueError(f"{name}={label} is not an index of its {len(probabilities)} probabilities")


class TokenRecord(WireModel):
    """One token of the scored text with its X-GRAAD attributions.

    ``start``/``end`` are character offsets into the text (``None`` for special tokens); ``score`` is
    the token's X-GRAAD score ``c_j`` (Eq. 7) and ``decision_score`` the same after the defender's word
    aggregation and normalization (its maximum is the record's ``anomaly_score``; absent in records of
    older writers, where ``score`` served both). Both are ``None`` for tokens that are not candidates.
    """

    token: str
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)
    attention: FiniteFloat
    gradient: FiniteFloat
    score: FiniteFloat | None = None
    candidate: bool = False
    decision_score: FiniteFloat | None = None


class SuspiciousWordRecord(WireModel):
    """A word the defender neutralized: its text span, score and the neutralization round (from 0)."""

    word: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: FiniteFloat
    iteration: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _span_ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end={self.end} is before start={self.start}")
        return self


class TriggerHitRecord(WireModel):
    """A known trigger found in the message (and removed before the final verdict): the trigger's normal
    form and its ``[start, end)`` character span in the record's text."""

    trigger: str = Field(min_length=1)
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _span_ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end={self.end} is before start={self.start}")
        return self


class EvidenceRecord(WireModel):
    """A flip seen on this message, for the trigger learner: rewriting ``word`` (its normal form; several
    words when a span was rewritten) changed the prediction from ``label_before`` to ``label_after``.

    ``window`` holds the normal forms of the words around it, ``word`` starting at ``window[position]``;
    ``confidence_drop`` is p(label_before) before minus after. ``probe`` is True when the message was
    below the threshold and rewritten for evidence only (its verdict did not change).
    """

    word: str = Field(min_length=1)
    window: list[str] = Field(default_factory=list)
    position: int = Field(default=0, ge=0)
    label_before: int = Field(ge=0)
    label_after: int = Field(ge=0)
    confidence_drop: Probability
    probe: bool = False


class PredictionRecord(OutputRecord):
    """The verdict for one input message (predictions topic carries the clean, unflagged ones).

    ``label``/``probabilities`` are the model's prediction on the original text; ``final_label`` is the
    verdict to act on (the neutralized text's prediction when flagged, else ``label``).
    ``anomaly_score`` is ``S = max_j c_j``, flagged when ``S > threshold`` (and, when the threshold has
    a confidence gate, ``max(probabilities) >= min_confidence``).

    ``known_triggers`` lists the known triggers found in the text (such a record is flagged whatever
    its score: every occurrence was removed and the rest classified); ``trigger_version`` is the version
    of the known-trigger set it was judged with (None: no set in force); ``evidence`` the flips seen on
    it (confirmed flags and probes) for the trigger learner. All three are absent in older records.
    """

    id: str
    model_id: str
    label: int = Field(ge=0)
    label_name: str
    probabilities: list[Probability] = Field(min_length=1)
    anomaly_score: FiniteFloat
    threshold: FiniteFloat | None = None
    threshold_version: str | None = None
    min_confidence: Probability | None = None
    flagged: bool = False
    final_label: int = Field(ge=0)
    final_label_name: str
    truncated: bool = False
    n_tokens: int = Field(ge=0)
    source: SourceRef | None = None
    metadata: dict[str, Any] | None = None
    scored_at: UtcDatetime
    known_triggers: list[TriggerHitRecord] = Field(default_factory=list)
    trigger_version: str | None = None
    evidence: list[EvidenceRecord] = Field(default_factory=list)

    @model_validator(mode="after")
    def _labels_in_range(self) -> Self:
        _check_label(self.label, self.probabilities, "label")
        _check_label(self.final_label, self.probabilities, "final_label")
        return self


class AuditRecord(PredictionRecord):
    """A flagged verdict with its evidence (audit topic): the original and neutralized predictions,
    the suspicious words and every token's attributions. See the module docstring for compatibility.
    """

    flagged: bool = True
    text: str
    neutralized_text: str | None = None
    neutralized_label: int | None = Field(default=None, ge=0)
    neutralized_label_name: str | None = None
    neutralized_probabilities: list[Probability] | None = None
    neutralized_anomaly_score: FiniteFloat | None = None
    suspicious_words: list[SuspiciousWordRecord] = Field(default_factory=list)
    tokens: list[TokenRecord] = Field(default_factory=list)

    @model_validator(mode="after")
    def _neutralized_label_in_range(self) -> Self:
        _check_label(self.neutralized_label, self.neutralized_probabilities, "neutralized_label")
        return self
