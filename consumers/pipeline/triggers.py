"""Known-trigger updates (the wire contract) as the core's TriggerSet, and the edits that make new ones.

Every place that applies a trigger set goes through :func:`trigger_set_from_update`: the worker's update
listener (triggers topic), ``stream-guard score`` / ``replay --triggers FILE`` and ``run --triggers FILE``
(:func:`read_trigger_file`, then :func:`trigger_set_for_model`), so their records carry the same
``known_triggers`` and ``trigger_version``.

A :class:`~schemas.TriggerUpdate` holds the whole set; each change publishes the next whole set. The
next update is built here, Kafka-free: :func:`update_from_learned` (the learner's promotions merged into
the previous set), :func:`add_trigger` and :func:`revoke_trigger` (an operator's edits). The next
update is always newer than the previous one by ``(created_at, version)`` — the order every worker
applies them in — even when the clock that stamps it is behind the previous writer's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from pydantic import ValidationError

from consumers.pipeline.update_files import read_update_bytes
from schemas import (
    KnownTriggerRecord,
    SchemaError,
    TriggerUpdate,
    decode,
    make_trigger_version,
    normalize_trigger,
    utc_now,
)
from stream_guard.triggers.known import KnownTrigger, TriggerSet

if TYPE_CHECKING:  # numpy comes with the learner; the commands that only read files do not need it
    from stream_guard.triggers.rule import LearnedTrigger

__all__ = [
    "TriggerEditError",
    "TriggerFileError",
    "add_trigger",
    "make_trigger_update",
    "merge_triggers",
    "read_trigger_file",
    "revoke_trigger",
    "trigger_set_for_model",
    "trigger_set_from_update",
    "update_from_learned",
    "write_trigger_file",
]

MAX_FILE_BYTES = 10_000_000  # a set of hundreds of triggers with their evidence is well under 1 MB


class TriggerFileError(ValueError):
    """A trigger file (or update) that cannot be read or applied; the message is one line, for the user."""


class TriggerEditError(ValueError):
    """An edit that cannot be made (nothing would change, or the update is another model's); one line."""


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


# -- applying an update ----------------------------------------------------------------------------


def trigger_set_from_update(update: TriggerUpdate) -> TriggerSet:
    """The core's TriggerSet for a validated update: its triggers (revoked words are never in it)
    under the update's version."""
    return TriggerSet(
        version=update.version,
        triggers=tuple(KnownTrigger(t.text, t.target_label, t.source) for t in update.triggers),
    )


def trigger_set_for_model(
    update: TriggerUpdate, model_id: str, *, source: str = "trigger update"
) -> TriggerSet:
    """The update as a TriggerSet for the model ``model_id``: a trigger set is learned on (and for) one
    model, so it applies only to the model it names (TriggerFileError otherwise)."""
    if update.model_id != model_id:
        raise TriggerFileError(
            f"{source} is for model {update.model_id!r}, not the loaded model {model_id!r}"
        )
    return trigger_set_from_update(update)


# -- files -----------------------------------------------------------------------------------------


def read_trigger_file(path: str | Path) -> TriggerUpdate:
    """The TriggerUpdate in a JSON file (``{"model_id", "version", "created_at", "triggers": [{"text":
    ...}, ...], "revoked": [...]}``, as :func:`write_trigger_file` writes it).

    Raises TriggerFileError for a missing or unreadable file, one that is not JSON and one that is not a
    valid update (a trigger without a word, one listed twice, one both known and revoked)."""
    data = read_update_bytes(path, "trigger file", TriggerFileError, MAX_FILE_BYTES)
    try:
        return decode(TriggerUpdate, data)
    except SchemaError as error:
        raise TriggerFileError(f"invalid trigger file {path}: {error.reason}") from None


def write_trigger_file(path: str | Path, update: TriggerUpdate) -> None:
    """Write the update as indented JSON, atomically (a reader sees the old file or the new one)."""
    file = Path(path).expanduser()
    if not file.parent.is_dir():
        raise TriggerFileError(f"cannot write {path}: directory {file.parent} does not exist")
    data = orjson.dumps(
        update.model_dump(mode="json"), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    )
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    except OSError as error:
        raise TriggerFileError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, file)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise TriggerFileError(f"cannot write {path}: {error.strerror or error}") from None


# -- making the next update ------------------------------------------------------------------------


def _created_at(previous: TriggerUpdate | None, at: datetime | None) -> datetime:
    """``at`` (default: now), moved just past ``previous.created_at`` when it is not later."""
    stamp = at if at is not None else utc_now()
    if previous is not None and stamp <= previous.created_at:
        stamp = previous.created_at + timedelta(microseconds=1)
    return stamp


def _same_model(previous: TriggerUpdate | None, model_id: str) -> None:
    if previous is not None and previous.model_id != model_id:
        raise TriggerEditError(f"the current set is for model {previous.model_id!r}, not {model_id!r}")


def make_trigger_update(
    model_id: str,
    triggers: Sequence[KnownTriggerRecord],
    revoked: Iterable[str] = (),
    *,
    previous: TriggerUpdate | None = None,
    created_at: datetime | None = None,
) -> TriggerUpdate:
    """A new whole set for ``model_id``, newer than ``previous``; its version is derived from its time
    and content (the same inputs give the same update, byte for byte).

    Raises TriggerEditError when ``previous`` is another model's and ValueError when the set is invalid."""
    _same_model(previous, model_id)
    stamp = _created_at(previous, created_at)
    revoked = list(revoked)
    texts = tuple(t.text for t in triggers)
    try:
        return TriggerUpdate(
            model_id=model_id,
            version=make_trigger_version(stamp, model_id, texts, tuple(revoked)),
            created_at=stamp,
            triggers=list(triggers),
            revoked=revoked,
        )
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        raise ValueError(_one_line(first["msg"])) from None


def _learned_record(t: LearnedTrigger) -> KnownTriggerRecord:
    return KnownTriggerRecord(
        text=t.text,
        target_label=int(t.target_label),
        source="learned",
        nominated_by=t.basis if t.basis in ("recurrence", "attribution") else "flips",
        flips=int(t.flips),
        messages=int(t.messages),
        probes=int(t.probes),
        first_seen=t.first_seen,
        last_seen=t.last_seen,
        insertion_rate=float(t.insertion_rate),
        insertion_texts=int(t.insertion_texts),
        clean_rate=float(t.clean_rate),
        learned_at=t.learned_at,
    )


def merge_triggers(
    model_id: str,
    incoming: Sequence[KnownTriggerRecord],
    *,
    previous: TriggerUpdate | None = None,
    revoked: Iterable[str] = (),
    created_at: datetime | None = None,
) -> tuple[TriggerUpdate, list[str]]:
    """The next whole set: ``previous``'s triggers (in order) with ``incoming`` merged in, and the words
    left out because they are revoked (in ``previous`` or ``revoked``, which are revoked from now on).

    An incoming trigger already in the set replaces its entry, except that a learned one never replaces
    an operator's (a pin stays a pin). A trigger that is revoked is left out, whether it was in the set
    or is incoming."""
    blocked = list(dict.fromkeys([*(previous.revoked if previous is not None else ()), *revoked]))
    merged: dict[str, KnownTriggerRecord] = {t.text: t for t in previous.triggers} if previous else {}
    for record in incoming:
        current = merged.get(record.text)
        if current is None or current.source == "learned" or record.source == "operator":
            merged[record.text] = record
    no = set(blocked)
    kept = [t for t in merged.values() if t.text not in no]
    update = make_trigger_update(model_id, kept, blocked, previous=previous, created_at=created_at)
    return update, [text for text in merged if text in no]


def update_from_learned(
    model_id: str,
    learned: Sequence[LearnedTrigger],
    *,
    previous: TriggerUpdate | None = None,
    created_at: datetime | None = None,
) -> TriggerUpdate:
    """The next whole set: ``previous``'s triggers (an operator's and earlier learned ones, in order) with
    ``learned`` merged in. A learned trigger already in the set as learned replaces its entry (fresher
    evidence); one an operator added stays the operator's; a revoked one is left out. ``created_at``
    (default: now) makes the update reproducible, e.g. a replay's last message time."""
    update, _ = merge_triggers(
        model_id, [_learned_record(t) for t in learned], previous=previous, created_at=created_at
    )
    return update


def add_trigger(
    previous: TriggerUpdate | None,
    model_id: str,
    text: str,
    *,
    target_label: int | None = None,
    at: datetime | None = None,
) -> TriggerUpdate:
    """The next set with ``text`` added by an operator (taken off the revoked list if it was there).

    Raises TriggerEditError when ``text`` has no word or is already a known trigger."""
    _same_model(previous, model_id)
    normal = normalize_trigger(text)
    if not normal:
        raise TriggerEditError(f"a trigger needs at least one word (letters or digits): {text!r}")
    if target_label is not None and target_label < 0:
        raise TriggerEditError(f"the target label must be >= 0, got {target_label}")
    triggers = list(previous.triggers) if previous is not None else []
    if previous is not None and normal in previous.texts():
        raise TriggerEditError(f"{normal!r} is already a known trigger (version {previous.version})")
    triggers.append(KnownTriggerRecord(text=normal, target_label=target_label, source="operator"))
    revoked = [r for r in previous.revoked if r != normal] if previous is not None else []
    return make_trigger_update(model_id, triggers, revoked, previous=previous, created_at=at)


def revoke_trigger(
    previous: TriggerUpdate | None, model_id: str, text: str, *, at: datetime | None = None
) -> TriggerUpdate:
    """The next set without ``text``, which goes on the revoked list (the learner never learns it again).
    A word that is not a known trigger can be revoked too, so that it is never learned.

    Raises TriggerEditError when ``text`` has no word or is already revoked."""
    _same_model(previous, model_id)
    normal = normalize_trigger(text)
    if not normal:
        raise TriggerEditError(f"a trigger needs at least one word (letters or digits): {text!r}")
    revoked = list(previous.revoked) if previous is not None else []
    if previous is not None and normal in revoked:
        raise TriggerEditError(f"{normal!r} is already revoked (version {previous.version})")
    triggers = [t for t in previous.triggers if t.text != normal] if previous is not None else []
    return make_trigger_update(model_id, triggers, [*revoked, normal], previous=previous, created_at=at)
