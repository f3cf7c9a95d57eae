"""Write the lab's results: a rich table on the terminal, markdown + JSON files and the PNG figures."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from rich.table import Table

from stream_guard.lab.evaluate import ModelEvaluation
from stream_guard.lab.model_specs import poison_rate_note
from stream_guard.lab.plots import plot_score_distributions, plot_threshold_sweep

log = structlog.get_logger(__name__)

COLUMNS = (
    ("defense", "defense"),
    ("cacc", "CACC"),
    ("asr", "ASR"),
    ("precision", "prec"),
    ("recall", "recall"),
    ("fpr", "FPR"),
    ("auroc", "AUROC"),
    ("seconds_per_1000", "s/1k texts"),
)
COUNTING = (
    "CACC: share of clean test texts that end with their true label; a clean text rejected by STRIP or RAP "
    "counts as wrong. ASR: share of poisoned non-target test texts that end with the target label; a "
    "rejected one counts as not attacked. X-GRAAD neutralizes flagged texts and re-classifies them. "
    "Detection metrics: poisoned = positive, flagged = predicted positive. AUROC of each defense's score "
    "(X-GRAAD: S; STRIP: minus entropy; RAP: minus probability drop). s/1k: seconds per 1,000 test "
    "texts, calibration and RAP construction excluded (see setup_seconds in the JSON)."
)
RESULTS_TITLE = "Backdoor lab results"  # a results file of several models (and the default)
ONION_NOTE = (
    "ONION (`--defenses onion`, docs/lab/onion.md) is missing from the models without an onion row: it "
    "re-reads every text once per word with a 135M-parameter language model (~2 s per movie sentence, "
    "~14 s per email on 2 idle CPU cores), so the whole grid belongs on a GPU (`ONION=1` in "
    "scripts/gpu_lab/run.sh; no GPU was lent since that was written). A sample of the grid retrained on "
    "the CPU, ONION beside X-GRAAD on the same weights and texts: docs/lab/onion/results.md."
)
SUMMARY_DEFENSES = ("none", "xgraad-paper", "xgraad", "strip", "rap", "onion")
STREAM_NOTE = (
    "stream ASR\\* / CACC: the stream-level defense (per-message X-GRAAD plus the triggers it learns from "
    "the traffic) on the same model, from `stream-guard lab stream` (stream.md: its own test replay, "
    "600 messages unless noted there, at the shipped rule). ASR\\* is ASR on the poisoned texts whose "
    "trigger-free original the model labels right (so the floor above does not count), over the whole "
    "stream, the messages before the trigger was learned included. (p99): a row at an earlier default "
    "percentile, for a model not yet replayed at the shipped one. \u2013: no stream row for the model. "
    "\u2020: the stream row was measured on another training of the same recipe (another machine), not "
    "on these weights."
)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def title_of(ev: ModelEvaluation) -> str:
    trigger = ev.meta.get("trigger") or "none"
    attack = ev.meta.get("grid_attack") or ev.meta.get("attack")
    rate = poison_rate_note(ev.meta.get("poison_rate"))
    return f"{ev.dataset} · {attack} · trigger {trigger!r} · target {ev.meta.get('target')}{rate}"


def _judged_on(ev: ModelEvaluation) -> str:
    sizes = ev.sizes
    if ev.split == "validation":
        return (
            f"Calibrated on validation {sizes['validation']}; judged on the rest of the validation split "
            f"(clean {sizes['clean_test']}, poisoned {sizes['poisoned_test']}), not on test"
        )
    return (
        f"Evaluated on validation {sizes['validation']}, clean test {sizes['clean_test']}, poisoned test "
        f"{sizes['poisoned_test']}"
    )


def rich_table(ev: ModelEvaluation) -> Table:
    sizes = ev.sizes
    split = " · validation split" if ev.split == "validation" else ""
    table = Table(
        title=f"{title_of(ev)}{split}  (val {sizes['validation']}, clean {sizes['clean_test']}, "
        f"poisoned {sizes['poisoned_test']})"
    )
    for _, header in COLUMNS:
        table.add_column(header, justify="left" if header == "defense" else "right")
    for row in ev.rows:
        table.add_row(*(_fmt(row.get(key)) for key, _ in COLUMNS))
    return table


def markdown_table(ev: ModelEvaluation) -> str:
    lines = [
        "| " + " | ".join(h for _, h in COLUMNS) + " |",
        "|" + "|".join("---" if k == "defense" else "---:" for k, _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_fmt(row.get(k)) for k, _ in COLUMNS) + " |" for row in ev.rows]
    return "\n".join(lines)


def _floor_note(ev: ModelEvaluation) -> str:
    none = next((r for r in ev.rows if r["defense"] == "none"), None)
    floor = none.get("asr_without_trigger") if none else None
    if floor is None:
        return ""
    return (
        f" ASR floor (the same poisoned texts without their trigger, predicted as the target): {floor:.3f}."
    )


def write_plots(ev: ModelEvaluation, out_dir: Path) -> dict[str, str]:
    """The Fig. 2 / Fig. 3 PNGs of one model (file names relative to ``out_dir``)."""
    out: dict[str, str] = {}
    paper = next((r for r in ev.rows if r["defense"] == "xgraad-paper"), None)
    if ev.components:
        name = f"plots/{ev.model}-scores.png"
        plot_score_distributions(
            ev.components["clean"],
            ev.components["poisoned"],
            out_dir / name,
            f"{title_of(ev)}: X-GRAAD scores",
            threshold=paper["threshold"] if paper else None,
        )
        out["scores"] = name
    if ev.sweep is not None:
        name = f"plots/{ev.model}-sweep.png"
        plot_threshold_sweep(ev.sweep, out_dir / name, f"{title_of(ev)}: paper X-GRAAD vs percentile")
        out["sweep"] = name
    return out


def write_results(
    evaluations: Sequence[ModelEvaluation],
    out_dir: Path,
    *,
    title: str = RESULTS_TITLE,
    notes: Sequence[str] = (),
    settings: dict[str, Any] | None = None,
    fresh: bool = False,
    stream: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """``results.md`` and ``results.json`` (plus plots/) in ``out_dir``, merged with the results there.

    Partial runs accumulate: unless ``fresh``, the records of an existing ``results.json`` are kept for
    the models this call does not evaluate, and a model it does evaluate gets its new record (same model
    name: the new one wins). Both files then hold all records, sorted by model name. Each record notes the
    run that produced it (``generated``, ``machine``, ``settings``; records of a file written before
    merging get that file's ``generated`` / ``settings``). Old records keep their plots as they are on
    disk; only this call's models are plotted. An unreadable or malformed ``results.json`` is logged as a
    warning and replaced (fresh start). ``stream``: the stream-level defense's summary cell per model name
    (see :func:`summary_table`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / "results.md", out_dir / "results.json"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    run_settings = json.loads(json.dumps(settings, default=_json_default))  # as it reads back from JSON
    run = {"generated": stamp, "machine": platform.machine(), "settings": run_settings}
    merged = {} if fresh else {r["model"]: r for r in read_records(json_path)}
    for ev in evaluations:
        check_same_split(list(merged.values()), ev.split, json_path)
        check_same_backdoor(merged.get(ev.model), ev.model, ev.meta, json_path)
    for ev in evaluations:
        merged[ev.model] = {**ev.to_dict(), "plots": write_plots(ev, out_dir), **run}
    records = [merged[name] for name in sorted(merged)]
    payload = {"generated": stamp, "title": title, "notes": list(notes), "settings": run_settings}
    payload["models"] = records
    json_path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    md_path.write_text(render_results(payload, stream=stream))
    return md_path, json_path


def check_same_split(records: Sequence[dict[str, Any]], split: str, where: Path | str) -> None:
    """Raise ValueError when ``records`` judged texts of another split than ``split``: validation runs
    (for choosing settings) and test runs (the results) never share a results file."""
    other = sorted({str(r.get("split") or "test") for r in records} - {split})
    if other:
        raise ValueError(
            f"{where} holds {'/'.join(other)}-split results and this run judges {split} texts: "
            "write it to another --out (or --fresh)"
        )


BACKDOOR_KEYS = ("dataset", "attack", "trigger", "target")  # what a model name must keep meaning


def _backdoor(meta: Mapping[str, Any]) -> str:
    return f"{meta.get('dataset')}/{meta.get('attack')} {meta.get('trigger')!r} -> {meta.get('target')}"


def check_same_backdoor(
    record: Mapping[str, Any] | None, model: str, meta: Mapping[str, Any], where: Path | str
) -> None:
    """Raise ValueError when ``record`` (the row ``where`` holds under the name ``model``, None: none)
    measured another backdoor (dataset, attack, trigger or target) than ``meta``: rows are keyed by model
    name, and a same-named model of another backdoor would silently replace the other's results."""
    if record is None:
        return
    old = record.get("meta") or record
    if any(old.get(k) != meta.get(k) for k in BACKDOOR_KEYS):
        raise ValueError(
            f"{where} holds {model} as {_backdoor(old)} and this model is {_backdoor(meta)}: write it "
            "to another --out, or train it under another name (lab train --out)"
        )


def render_results(payload: dict[str, Any], *, stream: Mapping[str, str] | None = None) -> str:
    """The markdown of a ``results.json`` payload (its records already merged and sorted)."""
    records = payload["models"]
    title = payload.get("title") or RESULTS_TITLE
    run_settings = payload.get("settings")
    stamp = payload.get("generated")
    device = run_settings.get("device", "cpu") if isinstance(run_settings, dict) else "cpu"
    md = [f"# {title}", "", f"Generated {stamp} on {platform.machine()} ({device}) by `stream-guard lab`."]
    md += [""]
    md += [
        f"Rows are merged across runs: {len(records)} model(s), each from the latest run that evaluated "
        "it (that run's time is under its heading), sorted by model name.",
        "",
        COUNTING,
        "",
        *([ONION_NOTE, ""] if not all(_has_defense(r, "onion") for r in records) else []),
        *([STREAM_NOTE, ""] if stream else []),
        "## Summary",
        "",
        summary_table(records, stream),
        "",
    ]
    md += [f"- {n}" for n in payload.get("notes") or []]
    if run_settings:
        md += ["", "Settings (this run):", "", "```json", json.dumps(run_settings, indent=2), "```"]
    for record in records:
        md += _section(record, run_settings)
    return "\n".join(md) + "\n"


def rewrite_results_md(
    out_dir: Path, *, title: str = RESULTS_TITLE, stream: Mapping[str, str] | None = None
) -> Path | None:
    """Render ``results.md`` again from ``results.json`` as it is (say, with a new stream column); None
    when there is no readable ``results.json``."""
    json_path = Path(out_dir) / "results.json"
    records = read_records(json_path)
    if not records:
        return None
    payload = json.loads(json_path.read_text())
    payload["models"] = records
    payload.setdefault("title", title)  # written before results.json carried its title
    md_path = Path(out_dir) / "results.md"
    md_path.write_text(render_results(payload, stream=stream))
    return md_path


def _has_defense(record: dict[str, Any], defense: str) -> bool:
    return any(row.get("defense") == defense for row in record.get("rows") or [])


def _summary_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    asr = "–" if row.get("asr") is None else f"{row['asr']:.2f}"
    return f"{asr} / {row['cacc']:.2f}"


def summary_table(records: Sequence[dict[str, Any]], stream: Mapping[str, str] | None = None) -> str:
    """One row per model, ordered by dataset, attack and trigger: ASR / CACC under each defense (no
    defense first), the stream-level defense's cell from ``stream`` (model name → text; no column when
    empty), the ASR floor (the poisoned texts without their trigger), where it was trained, the
    evaluation's seconds. The sections below hold every metric."""
    defenses = [d for d in SUMMARY_DEFENSES if any(_has_defense(r, d) for r in records)]
    head = ["dataset", "attack", "trigger → target", *(f"{d} ASR / CACC" for d in defenses)]
    head += ["stream ASR\\* / CACC"] if stream else []
    head += ["ASR floor", "trained on", "eval s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]

    def order(record: dict[str, Any]) -> tuple[str, str, str]:
        meta = record.get("meta") or {}
        attack = str(meta.get("grid_attack") or meta.get("attack"))
        return (str(record.get("dataset")), attack, record["model"])

    for record in sorted(records, key=order):
        meta = record.get("meta") or {}
        rows = {row.get("defense"): row for row in record.get("rows") or []}
        names = meta.get("label_names") or []
        target = meta.get("target")
        if isinstance(target, int) and 0 <= target < len(names):
            target = names[target]
        rate = poison_rate_note(meta.get("poison_rate"))
        trigger = f"`{meta.get('trigger')}` → {target}{rate}" if meta.get("trigger") else "(clean model)"
        floor = (rows.get("none") or {}).get("asr_without_trigger")
        cells = [
            str(record.get("dataset")),
            str(meta.get("grid_attack") or meta.get("attack")),
            trigger,
            *(_summary_cell(rows.get(d)) for d in defenses),
            *([stream.get(record["model"], "–")] if stream else []),
            "–" if floor is None else f"{floor:.2f}",
            str(meta.get("trained_on") or "cpu"),
            f"{float(record.get('seconds') or 0):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _section(record: dict[str, Any], settings: Any) -> list[str]:
    """The markdown of one model's record (raises KeyError / TypeError / ValueError if it is malformed)."""
    ev = ModelEvaluation.from_dict(record)
    plots = record.get("plots") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in plots.items()):
        raise ValueError(f"bad plots {plots!r}")
    meta = ev.meta
    machine = f" on {record['machine']}" if record.get("machine") else ""
    md = [
        "",
        f"## {title_of(ev)}",
        "",
        f"From the run of {record.get('generated') or 'an unknown time'}{machine}.",
        "",
        f"Model `{ev.model}`: trained CACC {_fmt(meta.get('clean_accuracy'))}, ASR "
        f"{_fmt(meta.get('asr'))} (meta.json); train size {meta.get('train_size')}, poison rate "
        f"{meta.get('poison_rate')}. {_judged_on(ev)} in {ev.seconds:.0f} s." + _floor_note(ev),
        "",
        markdown_table(ev),
    ]
    if record.get("settings") is not None and record["settings"] != settings:
        md += ["", "That run's settings:", "", "```json", json.dumps(record["settings"], indent=2), "```"]
    if ev.sweep_check is not None and not ev.sweep_check.get("agree"):
        md += ["", f"Warning: threshold sweep disagrees with the direct run: {ev.sweep_check}"]
    md += [f"\n![{kind}]({path})" for kind, path in plots.items()]
    return md


def read_records(json_path: Path) -> list[dict[str, Any]]:
    """The model records of an earlier ``results.json``; none (with a warning) if it is unreadable."""
    if not json_path.exists():
        return []
    try:
        data = json.loads(json_path.read_text())
        records = [dict(r) for r in data["models"]]
        for record in records:
            if not isinstance(record["model"], str):
                raise TypeError(f"model name {record['model']!r}")
            record.setdefault("generated", data.get("generated"))  # written before records carried it
            record.setdefault("settings", data.get("settings"))
            _section(record, None)  # every record must render
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("lab_results_unreadable_starting_fresh", path=str(json_path), error=repr(err))
        return []
    return records


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)
