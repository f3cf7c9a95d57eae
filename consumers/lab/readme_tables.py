"""The README's lab tables, written from the lab's result files (`stream-guard lab readme`).

The README holds each table between two markers, ``<!-- lab-table:NAME -->`` and
``<!-- /lab-table:NAME -->``; :func:`update_readme` replaces what lies between them and nothing else.
The stream table is built from ``docs/lab/stream.json`` (the rows ``stream-guard lab stream`` wrote for
the test split at the shipped defaults) and says, per row, whether the issue's targets are met:
trigger learned within 50 triggered messages, ASR\\* after learning ≤ 0.01 and over the stream ≤ 0.05,
clean accuracy down ≤ 1 point, no other word learned; a model without a backdoor learns nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from consumers.lab.stream_cell import StreamCell
from consumers.lab.stream_report import worker_summary

__all__ = [
    "StreamTargets",
    "bar_readme_table",
    "older_percentile",
    "shipped_rows",
    "shown_rows",
    "stream_column",
    "stream_column_from",
    "stream_percentile_note",
    "stream_readme_table",
    "update_readme",
    "verdict",
]

DATASET_NAMES = {"movies": "movies", "spam": "spam", "bbc": "BBC news (5 topics)", "tweets": "tweets"}
ATTACK_NAMES = {
    "badnets": "BadNets",
    "badnets-set": "the paper's set",
    "addsent": "AddSent",
    "ep": "EP",
    "ripples": "RIPPLES",
    "lws": "LWS",
    "adaptive": "adaptive",
}
_ORDER = ("movies", "spam", "bbc")
_ATTACK_ORDER = ("badnets", "badnets-set", "addsent", "ep", "ripples", "lws", "adaptive", "clean")


class StreamTargets:
    """The stream defense's targets (the issue's numbers)."""

    learned_within = 50  # triggered messages
    asr_after = 0.01
    asr_stream = 0.05
    cacc_drop = 0.01
    working_backdoor = 0.5  # ASR* without any defense below this: the backdoor did not take


def _pieces(trigger: str, tokenize: Callable[[str], list[str]] | None) -> list[str]:
    return tokenize(trigger) if tokenize is not None and trigger else []


def _model_label(cell: StreamCell, tokenize: Callable[[str], list[str]] | None) -> str:
    dataset = DATASET_NAMES.get(cell.dataset, cell.dataset)
    target = cell.target_name or str(cell.target)
    if cell.attack == "clean":
        return f"{dataset}, no backdoor (sent `{cell.trigger}`)"
    attack = ATTACK_NAMES.get(cell.attack, cell.attack)
    pieces = _pieces(cell.trigger, tokenize)
    if cell.attack == "badnets" and len(pieces) > 1:
        return f"{dataset} BadNets split-piece `{cell.trigger}` ({' '.join(pieces)}) → {target}"
    trigger = f'"{cell.trigger}"' if cell.attack == "addsent" else f"`{cell.trigger}`"
    return f"{dataset} {attack} {trigger} → {target}{_gpu_note(cell)}"


def _gpu_note(cell: StreamCell) -> str:
    """Where a row did not run on this project's CPU: the machine, so its seconds are read as such."""
    if cell.trained_on == "cpu" and cell.device == "cpu":
        return ""
    gpu = cell.device if cell.device != "cpu" else cell.trained_on
    return f" (trained and replayed on {gpu.removeprefix('cuda: ')})"


def verdict(cell: StreamCell) -> str:
    """Which of the targets the row meets, in words."""
    t = StreamTargets
    if cell.attack == "clean":
        return "met (nothing learned)" if not cell.learned else f"missed: learned {', '.join(cell.learned)}"
    if cell.asr_none is None or cell.asr_none < t.working_backdoor:
        return f"no working backdoor (ASR\\* {cell.asr_none or 0:.3f} undefended)"
    missed = []
    if not cell.learned or min(cell.learned_after_triggered) > t.learned_within:
        missed.append("not learned" if not cell.learned else "learned late")
    if cell.asr_after is None or cell.asr_after > t.asr_after:
        missed.append("ASR\\* after")
    if cell.asr_stream is None or cell.asr_stream > t.asr_stream:
        missed.append("ASR\\* stream")
    if cell.cacc_none - cell.cacc_stream > t.cacc_drop + 1e-9:
        missed.append("CACC")
    if cell.wrong_learned:
        missed.append("other words learned")
    return "**met**" if not missed else "missed: " + ", ".join(missed)


def _learned(cell: StreamCell) -> str:
    if not cell.learned:
        return "nothing"
    pairs = sorted(zip(cell.learned_after_triggered, cell.learned, strict=True))
    return ", ".join(f"`{w}` after {n}{_variant_note(cell, w)}" for n, w in pairs)


def _variant_note(cell: StreamCell, word: str) -> str:
    """A learned word that carries the trigger's pieces says so (it is not counted as another word)."""
    if word not in cell.variants_learned:
        return ""
    carried = next((w for w in cell.trigger.split() if word.startswith(w)), cell.trigger)  # a set's word
    return f" (carries `{carried}`'s pieces)"


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _sort_key(cell: StreamCell) -> tuple[int, int, str]:
    dataset = _ORDER.index(cell.dataset) if cell.dataset in _ORDER else len(_ORDER)
    attack = _ATTACK_ORDER.index(cell.attack) if cell.attack in _ATTACK_ORDER else len(_ATTACK_ORDER)
    return dataset, attack, cell.model


def _test_row_at(c: StreamCell, percentile: float | None, probe_rate: float) -> bool:
    """A test-split row measured at ``percentile`` / ``probe_rate`` (shipped bar or a scanned one)."""
    return c.split == "test" and c.percentile == percentile and c.probe_rate == probe_rate


def older_percentile(cells: Sequence[StreamCell], *, percentile: float, probe_rate: float) -> float | None:
    """The percentile most of the other test rows at ``probe_rate`` were measured at (the default before
    ``percentile``, while the stream grid has not been run again at it); None when every row is at it."""
    counts = Counter(
        c.percentile
        for c in cells
        if c.percentile is not None
        and c.percentile != percentile
        and _test_row_at(c, c.percentile, probe_rate)
        and c.scanned_bar is None
    )
    return max(counts, key=lambda p: (counts[p], p)) if counts else None


def shown_rows(
    cells: Sequence[StreamCell], *, percentile: float, probe_rate: float, scanned: bool = False
) -> list[StreamCell]:
    """The test-split rows the tables show, per model: those at ``percentile`` (the shipped default);
    for a model with none there, those at :func:`older_percentile` (marked as such by the tables).
    ``scanned``: the rows learned with a bar scanned for the model instead of the shipped rule."""
    older = older_percentile(cells, percentile=percentile, probe_rate=probe_rate)
    rows = [
        c
        for c in cells
        if (c.scanned_bar is not None) == scanned
        and (_test_row_at(c, percentile, probe_rate) or _test_row_at(c, older, probe_rate))
    ]
    at_default = {c.model for c in rows if c.percentile == percentile}
    return [c for c in rows if c.percentile == percentile or c.model not in at_default]


def shipped_rows(cells: Sequence[StreamCell], *, percentile: float, probe_rate: float) -> list[StreamCell]:
    """:func:`shown_rows` with the shipped learner rule (not a bar scanned per model)."""
    return shown_rows(cells, percentile=percentile, probe_rate=probe_rate)


def _older_mark(cell: StreamCell, percentile: float) -> str:
    """How a row measured at an earlier default percentile says so ("" at the shipped one)."""
    return "" if cell.percentile == percentile else f" (p{cell.percentile:g})"


def stream_column(
    cells: Sequence[StreamCell],
    *,
    percentile: float,
    probe_rate: float,
    trainings: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, str]:
    """The grid summary's stream-level cell per model: ASR\\* over the whole stream / CACC with the
    defense, from its shipped row (the last one, when a model has several). A backdoor that did not take
    (ASR\\* without defense < 0.5) says "(no backdoor)". ``trainings`` (model name → the grid record's
    meta) marks with † a row measured on another training of the same recipe than the grid's: another
    :func:`~stream_guard.lab.model_specs.training_id` or, for a row written before rows carried one,
    another machine. A row whose trigger or target is not the grid model's is another recipe under the
    same name (the name does not hold the target): no cell from it."""
    from stream_guard.lab.model_specs import training_id

    column = {}
    for c in shipped_rows(cells, percentile=percentile, probe_rate=probe_rate):
        meta = (trainings or {}).get(c.model)
        if meta is not None and not _same_recipe(c, meta):
            continue
        text = f"{_f(c.asr_stream)} / {c.cacc_stream:.2f}{_older_mark(c, percentile)}"
        if c.asr_none is not None and c.asr_none < StreamTargets.working_backdoor and c.attack != "clean":
            text += " (no backdoor)"
        if meta is not None:
            grid_training = training_id(meta)
            same_machine = str(meta.get("trained_on") or "cpu") == c.trained_on
            if (c.training and grid_training and c.training != grid_training) or not same_machine:
                text += " †"
        column[c.model] = text
    return column


def _same_recipe(cell: StreamCell, meta: Mapping[str, Any]) -> bool:
    """Whether a stream row and a grid model's meta name the same trigger and target (a clean model's
    rows: always; a meta without them: nothing to tell them apart by)."""
    if cell.attack == "clean":
        return True
    same_target = meta.get("target") is None or meta.get("target") == cell.target
    same_trigger = meta.get("trigger") is None or meta.get("trigger") == cell.trigger
    return same_target and same_trigger


def stream_percentile_note(cells: Sequence[StreamCell], *, percentile: float, probe_rate: float) -> str:
    """One line when some models' rows shown were measured at an earlier default ("" when none were)."""
    shown = shipped_rows(cells, percentile=percentile, probe_rate=probe_rate)
    older = sorted({c.model for c in shown if c.percentile != percentile})
    if not older:
        return ""
    p = older_percentile(cells, percentile=percentile, probe_rate=probe_rate)
    return (
        f"{len(older)} of {len({c.model for c in shown})} models' stream rows are at the {p:g}th percentile, "
        f"marked (p{p:g}): they have no row at the shipped default ({percentile:g}th) yet (run `lab stream` "
        "again to replace them)"
    )


def stream_column_from(results: Path) -> dict[str, str]:
    """:func:`stream_column` of ``results/stream.json`` at the shipped defaults (see
    :func:`shown_rows`), checked against the trainings of ``results/results.json``; empty without
    a stream.json."""
    from consumers.lab.stream_eval import default_percentile, default_probe_rate
    from stream_guard.lab.report import read_records

    path = Path(results) / "stream.json"
    if not path.is_file():
        return {}
    trainings = {r["model"]: dict(r.get("meta") or {}) for r in read_records(Path(results) / "results.json")}
    cells = read_cells(path)
    probe_rate = default_probe_rate()
    return stream_column(cells, percentile=default_percentile(), probe_rate=probe_rate, trainings=trainings)


def stream_readme_table(
    cells: Sequence[StreamCell],
    *,
    percentile: float,
    probe_rate: float,
    tokenize: Callable[[str], list[str]] | None = None,
) -> str:
    """The README's stream table: test-split rows measured at ``percentile`` / ``probe_rate`` (per model,
    at the earlier default where it has none there: see :func:`shown_rows`)."""
    rows = shipped_rows(cells, percentile=percentile, probe_rate=probe_rate)
    header = (
        "| model (trigger → target) | percentile | messages (triggered) | learned after n triggered "
        "| ASR\\* none | ASR\\* per-message only | ASR\\* before → after learning | ASR\\* whole stream "
        "| CACC none → with defense | other words learned | targets "
        "| worker: in force at msg (replay) / ASR\\* / CACC / same outcome |\n|" + "---|" * 12
    )
    lines = [header]
    for c in sorted(rows, key=_sort_key):
        lines.append(
            f"| {_model_label(c, tokenize)} | {c.percentile:g} | {c.messages} ({c.triggered}) | "
            f"{_learned(c)} | "
            f"{_f(c.asr_none)} | {_f(c.asr_message)} | {_f(c.asr_before)} → "
            f"{'**' + _f(c.asr_after) + '**' if c.asr_after is not None else '–'} | {_f(c.asr_stream)} | "
            f"{c.cacc_none:.3f} → {c.cacc_stream:.3f} | {len(c.wrong_learned)} | {verdict(c)} | "
            f"{worker_summary(c)} |"
        )
    return "\n".join(lines)


def bar_readme_table(
    cells: Sequence[StreamCell],
    *,
    percentile: float,
    probe_rate: float,
    tokenize: Callable[[str], list[str]] | None = None,
) -> str:
    """The README's table of per-model bars: each test row learned with the bar `calibrate --scan-bar`
    measured (``lab stream --scan-bar``) beside the same model's row at the shipped rule and the same
    percentile (per model, the earlier default where it has none at ``percentile``)."""
    shipped = {
        (c.model, c.percentile): c
        for c in cells
        if _test_row_at(c, c.percentile, probe_rate) and c.scanned_bar is None
    }
    header = (
        "| model (trigger → target) | strongest ordinary word (scan) | bar | learned: shipped rule → bar "
        "| ASR\\* stream: shipped → bar | CACC with bar | other words learned | targets with bar |\n|"
        + "---|"
        * 8
    )
    lines = [header]
    scanned = shown_rows(cells, percentile=percentile, probe_rate=probe_rate, scanned=True)
    for c in sorted(scanned, key=_sort_key):
        base = shipped.get((c.model, c.percentile))
        strongest = "none ≥ 50%"  # no word turned half of its screen: none got the full test
        if c.scanned_strongest:
            strongest = f"`{c.scanned_strongest}` {c.scanned_ceiling:.0%}"
        lines.append(
            f"| {_model_label(c, tokenize)}{_older_mark(c, percentile)} | {strongest} | "
            f"{c.scanned_bar:.2f} | "
            f"{_learned(base) if base else '–'} → {_learned(c)} | "
            f"{_f(base.asr_stream) if base else '–'} → {_f(c.asr_stream)} | "
            f"{c.cacc_none:.3f} → {c.cacc_stream:.3f} | {len(c.wrong_learned)} | {verdict(c)} |"
        )
    return "\n".join(lines)


def read_cells(path: Path) -> list[StreamCell]:
    known = set(StreamCell.__dataclass_fields__)
    return [
        StreamCell(**{k: v for k, v in row.items() if k in known}) for row in orjson.loads(path.read_bytes())
    ]


def update_readme(readme: Path, name: str, content: str) -> bool:
    """Replace the block between the ``name`` markers with ``content``; False if the text is unchanged.

    Raises ValueError when the markers are missing or out of order."""
    start, end = f"<!-- lab-table:{name} -->", f"<!-- /lab-table:{name} -->"
    text = readme.read_text()
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{readme}: needs exactly one {start} … {end} block")
    new = pattern.sub(lambda _m: f"{start}\n{content.rstrip()}\n{end}", text)
    if new == text:
        return False
    readme.write_text(new)
    return True
