"""The stream evaluation's table: one row per model, Markdown for people and JSON for tools."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from consumers.lab.stream_cell import StreamCell

__all__ = ["markdown_table", "worker_summary", "write_stream_results"]

_COLUMNS = (
    "model",
    "traffic, percentile, probe rate",
    "triggered / messages",
    "learned (after n triggered)",
    "wrong words learned",
    "ASR\\* none",
    "ASR\\* per-message",
    "ASR\\* before → after learning",
    "ASR\\* stream",
    "CACC none / per-message / stream",
    "clean flagged per-message / stream",
    "s per 1,000 msgs per-message / stream",
    "worker: in force at msg (replay) / ASR\\* / CACC / same outcome",
)
HEADER = "| " + " | ".join(_COLUMNS) + " |\n|" + "---|" * len(_COLUMNS)


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _row(c: StreamCell) -> str:
    learned = ", ".join(
        f"`{t}` ({n}{', carries the trigger' if t in c.variants_learned else ''})"
        for t, n in zip(c.learned, c.learned_after_triggered, strict=True)
    )
    where = "" if c.device == "cpu" else f" on {c.device}"
    bar = "" if c.scanned_bar is None else f", scanned bar {c.scanned_bar:g}"
    return (
        f"| {c.model} (`{c.trigger}` → {c.target_name or c.target}){where} | {c.split}{bar}, "
        f"{'p' + format(c.percentile, 'g') if c.percentile is not None else 'default percentile'}, probe "
        f"{c.probe_rate:g} | {c.triggered} / {c.messages} | {learned or 'none'} | "
        f"{len(c.wrong_learned)} | {_f(c.asr_none)} | {_f(c.asr_message)} | "
        f"{_f(c.asr_before)} → {_f(c.asr_after)} | {_f(c.asr_stream)} | "
        f"{c.cacc_none:.3f} / {c.cacc_message:.3f} / {c.cacc_stream:.3f} | "
        f"{c.clean_flagged_message:.1%} / {c.clean_flagged_stream:.1%} | "
        f"{c.seconds_per_1000_message:.1f} / {c.seconds_per_1000:.1f}{_learner_cost(c)} | "
        f"{worker_summary(c)} |"
    )


def _learner_cost(c: StreamCell) -> str:
    """What the learner classified, beside the stream's time (" (learner 796 + 500 once)")."""
    if c.learner_texts is None:
        return ""
    return f" (learner {c.learner_texts} + {c.learner_setup_texts} once)"


def worker_summary(c: StreamCell) -> str:
    """The live worker's figures beside the replay's ("–" when it was not run)."""
    if c.worker_agreement is None:
        return "–"
    at = "none" if c.in_force_at_worker is None else str(c.in_force_at_worker)
    replay = "none" if c.in_force_at_replay is None else str(c.in_force_at_replay)
    cacc = "–" if c.cacc_worker is None else f"{c.cacc_worker:.3f}"
    return f"{at} ({replay}) / {_f(c.asr_worker)} / {cacc} / {c.worker_agreement:.1%}"


def markdown_table(cells: Sequence[StreamCell]) -> str:
    return "\n".join([HEADER, *(_row(c) for c in cells)])


def write_stream_results(cells: Sequence[StreamCell], out: Path, command: str) -> tuple[Path, Path]:
    """``out``/stream.md and ``out``/stream.json (merged with the cells already there, by model)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "stream.json", out / "stream.md"
    known = set(StreamCell.__dataclass_fields__)
    old_rows = orjson.loads(json_path.read_bytes()) if json_path.is_file() else []
    old = [StreamCell(**{k: v for k, v in c.items() if k in known}) for c in old_rows]
    rows = {c.key: c.to_dict() for c in old}
    rows.update({c.key: c.to_dict() for c in cells})
    ordered = [rows[k] for k in sorted(rows)]
    json_path.write_bytes(orjson.dumps(ordered, option=orjson.OPT_INDENT_2) + b"\n")
    merged = [StreamCell(**r) for r in ordered]
    md_path.write_text(
        "# Stream-level defense: learned triggers, measured through `calibrate` and `replay`\n\n"
        f"Made by `{command}` (rows merged by model across runs). Traffic: {_traffic_note(merged)}, "
        "the attack's trigger in a share of the non-target messages; `replay --threshold-file` "
        "(per-message defense) and `replay --threshold-file --learn-triggers --clean-texts "
        "<calibration texts>` (stream defense). ASR\\* over the triggered messages whose trigger-free "
        "original the model classifies correctly; CACC and the flag rate over the clean messages. The "
        "stream's time includes the learner's: \"learner N + M once\" is the texts its insertion tests "
        "and screens classified, and the clean texts it labelled once at the start (a cost a longer "
        "stream spreads thinner).\n\n" + markdown_table(merged) + "\n"
    )
    return md_path, json_path


def _traffic_note(cells: Sequence[StreamCell]) -> str:
    """Where the rows' traffic and calibration texts come from (test rows, validation rows or both)."""
    test = "each model's test split in a seeded random order, calibration on its validation split"
    validation = (
        "two seeded random halves of the model's validation split, one the traffic and one the "
        "calibration texts (the test split untouched)"
    )
    splits = {c.split for c in cells}
    if splits == {"validation"}:
        return validation
    if "validation" in splits:
        return f"{test} (rows marked `validation`: {validation})"
    return test
