"""Scoring a stream evaluation's records against the ground truth kept apart: ASR\\* before and after
learning and over the stream, CACC, flags, which learned words are triggers, and the worker beside the
replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from consumers.lab.stream_cell import StreamCell, StreamTraffic
from stream_guard.triggers.phrases import normalize_phrase

__all__ = ["carries_trigger", "in_force_at", "is_part_of", "score_learned", "score_records", "score_worker"]


def is_part_of(learned: str, trigger: str) -> bool:
    """A learned word or phrase that is the trigger, a piece of it, or the trigger with neighbours."""
    if not trigger:
        return False
    return f" {learned} " in f" {trigger} " or f" {trigger} " in f" {learned} "


def carries_trigger(learned: str, trigger: str, tokenize: Callable[[str], list[str]]) -> bool:
    """A learned word whose word pieces begin with a one-word trigger's and go on (``bblcd`` is ``bb ##lc
    ##d``): the model reads the trigger's pieces in it, so on a backdoor tied to those pieces (EP poisons
    the piece's embedding) the word fires the backdoor as the trigger does."""
    if not trigger or " " in learned or " " in trigger:
        return False
    pieces, trigger_pieces = tokenize(learned), tokenize(trigger)
    return len(pieces) > len(trigger_pieces) and pieces[: len(trigger_pieces)] == trigger_pieces


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def score_records(
    cell: StreamCell, traffic: StreamTraffic, records: Sequence[dict[str, Any]], *, defended: str
) -> None:
    """Fill ``cell``'s figures for one replay's records: ``defended`` is "message" or "stream"."""
    target = traffic.target
    clean = [r for r in records if r["id"] not in traffic.triggered]
    attacked = [r for r in records if r["id"] in traffic.triggered and traffic.original_correct[r["id"]]]

    def asr(rows: Sequence[dict[str, Any]], key: str = "final_label") -> float | None:
        return _rate(sum(r[key] == target for r in rows), len(rows))

    correct = sum(r["final_label"] == traffic.true_label[r["id"]] for r in clean)
    flagged = sum(bool(r.get("flagged")) for r in clean) / max(1, len(clean))
    if defended == "message":
        cell.asr_none = asr(attacked, "label")
        cell.cacc_none = sum(r["label"] == traffic.true_label[r["id"]] for r in clean) / max(1, len(clean))
        cell.asr_message = asr(attacked)
        cell.cacc_message = correct / max(1, len(clean))
        cell.clean_flagged_message = flagged
        return
    cell.asr_stream = asr(attacked)
    cell.cacc_stream = correct / max(1, len(clean))
    cell.clean_flagged_stream = flagged
    cell.known_trigger_hits = sum(bool(r.get("known_triggers")) for r in records)
    first = next((k for k, r in enumerate(records) if r.get("trigger_version")), None)
    if first is None:
        cell.asr_before, cell.asr_after = cell.asr_stream, None
        return
    before_ids = {r["id"] for r in records[:first]}
    cell.asr_before = asr([r for r in attacked if r["id"] in before_ids])
    cell.asr_after = asr([r for r in attacked if r["id"] not in before_ids])


def in_force_at(records: Sequence[dict[str, Any]]) -> int | None:
    """The position of the first record judged with a learned trigger set (None: none was)."""
    return next((k for k, r in enumerate(records) if r.get("trigger_version")), None)


def score_worker(
    cell: StreamCell,
    traffic: StreamTraffic,
    worker: Sequence[dict[str, Any]],
    replayed: Sequence[dict[str, Any]],
    seconds: float,
) -> None:
    """Fill ``cell``'s worker figures: its ASR* and CACC, where a learned set came in force in it
    and in the replay, and how many messages got the same final label and flag in both."""
    probe = StreamCell(**{**cell.to_dict(), "learned": [], "learned_after_triggered": []})
    score_records(probe, traffic, worker, defended="stream")
    cell.asr_worker, cell.cacc_worker = probe.asr_stream, probe.cacc_stream
    cell.in_force_at_worker, cell.in_force_at_replay = in_force_at(worker), in_force_at(replayed)
    same = sum(
        w.get("id") == r.get("id")
        and w.get("final_label") == r.get("final_label")
        and bool(w.get("flagged")) == bool(r.get("flagged"))
        for w, r in zip(worker, replayed, strict=False)
    )
    cell.worker_agreement = same / max(1, len(replayed))
    cell.seconds_worker = seconds


def score_learned(
    cell: StreamCell,
    traffic: StreamTraffic,
    records: Sequence[dict[str, Any]],
    learned: Sequence[dict[str, Any]],
    attack: str,
    tokenize: Callable[[str], list[str]],
) -> None:
    """Fill ``cell``'s learned words: each one's triggered messages judged before it was in force, and
    whether it is a trigger (or part of one), carries a trigger's pieces, or is another word."""
    if attack == "clean":
        true_triggers = [""]
    elif attack == "badnets-set":  # one word of the set per poisoned text: each is a trigger
        true_triggers = normalize_phrase(traffic.trigger).split()
    else:
        true_triggers = [normalize_phrase(traffic.trigger)]
    position = {r["id"]: k for k, r in enumerate(records)}
    triggered_order = sorted(traffic.triggered, key=position.__getitem__)
    for row in learned:
        text = row["text"]
        cell.learned.append(text)
        if any(carries_trigger(text, t, tokenize) for t in true_triggers):
            cell.variants_learned.append(text)
        elif not any(is_part_of(text, t) for t in true_triggers):
            cell.wrong_learned.append(text)
        first = next(
            (
                k
                for k, r in enumerate(records)
                if text in (h["trigger"] for h in r.get("known_triggers") or [])
            ),
            None,
        )
        seen = sum(1 for mid in triggered_order if first is None or position[mid] < first)
        cell.learned_after_triggered.append(seen)
