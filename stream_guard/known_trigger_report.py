"""What the known-trigger memory learned, why, and what it caught in a set of records.

A known-trigger set (the wire's ``schemas.TriggerUpdate``, read from a ``--triggers`` file or the triggers
topic) and its triggers (``schemas.KnownTriggerRecord``) satisfy :class:`KnownTriggerSetLike` and
:class:`KnownTriggerLike` structurally, so the audit report shows them without the core importing the
wire contract (as :class:`stream_guard.decision.Decision` does for records).

:class:`KnownTriggerHits` counts, per model, the records in which each known trigger fired (the records'
``known_triggers``: such a record was flagged whatever its score) and the label names the records tell.
A record counts once per trigger however often the trigger occurs in it. Records from older writers
carry no ``known_triggers`` and count as not caught.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

__all__ = ["KnownTriggerHits", "KnownTriggerLike", "KnownTriggerSetLike", "summary_line"]

SUMMARY_TRIGGERS = 5  # triggers named in the one-line summary


class KnownTriggerLike(Protocol):
    """One known trigger and the evidence that promoted it (None where unknown, e.g. an operator's)."""

    @property
    def text(self) -> str: ...
    @property
    def target_label(self) -> int | None: ...
    @property
    def source(self) -> str: ...  # "learned" | "operator"
    @property
    def flips(self) -> int | None: ...
    @property
    def messages(self) -> int | None: ...
    @property
    def probes(self) -> int | None: ...
    @property
    def first_seen(self) -> datetime | None: ...
    @property
    def last_seen(self) -> datetime | None: ...
    @property
    def insertion_rate(self) -> float | None: ...
    @property
    def insertion_texts(self) -> int | None: ...
    @property
    def clean_rate(self) -> float | None: ...
    @property
    def learned_at(self) -> datetime | None: ...


class KnownTriggerSetLike(Protocol):
    """The whole known-trigger set of one model, and the words an operator revoked."""

    @property
    def model_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def triggers(self) -> Sequence[KnownTriggerLike]: ...
    @property
    def revoked(self) -> Sequence[str]: ...


class KnownTriggerHits:
    """Per model: records seen, records caught by a known trigger, records per trigger and per set
    version, and the label names the records tell. ``add`` every record (flagged or not)."""

    def __init__(self) -> None:
        self.records: Counter[str] = Counter()
        self.caught: Counter[str] = Counter()
        self.by_trigger: Counter[tuple[str, str]] = Counter()
        self.by_version: Counter[tuple[str, str]] = Counter()
        self._names: dict[tuple[str, int], str] = {}

    def add(self, record: Any) -> None:
        model = str(record.model_id)
        self.records[model] += 1
        for label, name in ((record.label, record.label_name), (record.final_label, record.final_label_name)):
            self._names.setdefault((model, int(label)), str(name))
        hits = getattr(record, "known_triggers", None) or ()
        if not hits:
            return
        self.caught[model] += 1
        self.by_version[(model, str(getattr(record, "trigger_version", None) or "unknown"))] += 1
        for trigger in {str(hit.trigger) for hit in hits}:
            self.by_trigger[(model, trigger)] += 1

    @property
    def n_caught(self) -> int:
        """Records caught by a known trigger, all models."""
        return sum(self.caught.values())

    def count(self, model_id: str, trigger: str) -> int:
        """Records of ``model_id`` in which ``trigger`` (its normal form) fired."""
        return self.by_trigger[(model_id, trigger)]

    def fired(self, model_id: str) -> list[tuple[str, int]]:
        """The triggers that fired in records of ``model_id``: (trigger, records), most first."""
        rows = [(t, n) for (m, t), n in self.by_trigger.items() if m == model_id]
        return sorted(rows, key=lambda tn: (-tn[1], tn[0]))

    def versions(self, model_id: str) -> list[tuple[str, int]]:
        """The set versions that caught records of ``model_id``: (version, records), oldest name first."""
        return sorted((v, n) for (m, v), n in self.by_version.items() if m == model_id)

    def label_name(self, model_id: str, label: int | None) -> str | None:
        """The label's name as the model's records tell it (None when no record tells it)."""
        return None if label is None else self._names.get((model_id, label))

    def models(self) -> list[str]:
        """The models of the records, most records first."""
        return [m for m, _ in sorted(self.records.items(), key=lambda mn: (-mn[1], mn[0]))]


def _listing(rows: Sequence[tuple[str, int]]) -> str:
    shown = ", ".join(f"{t} {n}" for t, n in rows[:SUMMARY_TRIGGERS])
    return shown + (f", … ({len(rows) - SUMMARY_TRIGGERS} more)" if len(rows) > SUMMARY_TRIGGERS else "")


def summary_line(
    hits: KnownTriggerHits, model_id: str, known: KnownTriggerSetLike | None = None, where: str | None = None
) -> str:
    """One line for the terminal: the set read from ``where`` (or that there is none there; neither:
    no set was read) and what the known triggers caught in the records of ``model_id``."""
    if known is None:
        head = f"known triggers of model {model_id}" + (f": none at {where}" if where else "")
    else:
        head = (
            f"known triggers of model {model_id} (version {known.version}, {where}): "
            f"{len(known.triggers)} known, {len(known.revoked)} revoked"
        )
    n, total = hits.caught[model_id], hits.records[model_id]
    if not n:
        return f"{head}; none fired in {total} records"
    return f"{head}; fired in {n} of {total} records: {_listing(hits.fired(model_id))}"
