"""Choosing a per-message X-GRAAD setup from validation-split grid runs (`stream-guard lab choose`).

Each candidate is one defense row ("xgraad", "xgraad-paper", ...) of one validation run: a directory that
`lab grid --split validation [--xgraad-config FILE] --out DIR` wrote. Every candidate is judged on the
same models (those every run evaluated): the attack success rate left on the models whose backdoor works
(undefended ASR at least ``working_asr``) and the clean accuracy it costs on every model, against the same
run's undefended row. The rule: among the candidates whose mean clean-accuracy cost is within
``max_cacc_cost`` points on *every dataset* (so that long texts, where the filter costs nothing, cannot
hide what it costs on short ones), the lowest mean ASR wins (then the lower cost). The same numbers per
dataset are kept for the report. Test-split results are refused:
a choice made on them would be a choice made on the numbers it is then reported with.

The choice is then *reported* on test splits with the same numbers and no rule (`stream-guard lab
compare`): :func:`candidates` with ``split="test"`` refuses validation runs instead, and
:func:`report_markdown` writes the tables without a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WORKING_ASR = 0.5  # an undefended ASR below this: the backdoor did not take, the row says nothing
MAX_CACC_COST = 1.0  # points of clean accuracy a default may cost on average


@dataclass(frozen=True)
class Candidate:
    """One setup's numbers over the shared models."""

    name: str  # "<run>/<defense>"
    describe: str  # what the setup is (the run's settings for that defense)
    models: int  # models compared (every run has them)
    working: int  # of which with a working backdoor
    mean_asr: float  # over the working backdoors
    worst_asr: float
    stopped: int  # working backdoors left at ASR <= 0.10
    mean_cacc_cost: float  # points, over all models: undefended CACC minus defended
    worst_cacc_cost: float
    by_dataset: tuple[DatasetNumbers, ...] = ()

    def within(self, budget: float) -> bool:
        """Mean cost within ``budget`` overall and on each dataset."""
        costs = [self.mean_cacc_cost, *(d.mean_cacc_cost for d in self.by_dataset)]
        return all(c <= budget + 1e-9 for c in costs)


@dataclass(frozen=True)
class DatasetNumbers:
    """One candidate's numbers on one dataset's models."""

    dataset: str
    models: int
    working: int
    mean_asr: float | None  # None: no working backdoor on this dataset
    mean_cacc_cost: float


def _rows(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(r["defense"]): r for r in record.get("rows") or []}


def check_split(run: str, records: Sequence[Mapping[str, Any]], split: str = "validation") -> None:
    """ValueError unless every record of ``run`` judged ``split`` texts (validation: to choose; test: to
    report a choice already made)."""
    if not records:
        raise ValueError(f"{run}: no results")
    other = [r for r in records if (r.get("split") or "test") != split]
    if other and split == "validation":
        raise ValueError(
            f"{run}: {len(other)} record(s) judged the test split ({other[0].get('model')}, ...): choose "
            "on `lab grid --split validation` runs only"
        )
    if other:
        raise ValueError(
            f"{run}: {len(other)} record(s) judged the {other[0].get('split')} split "
            f"({other[0].get('model')}, ...): report on test runs (`lab eval` / `lab grid` without --split)"
        )


def candidates(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    describe: Mapping[str, Mapping[str, Any]],
    *,
    defenses: Sequence[str] = ("xgraad", "xgraad-paper"),
    working_asr: float = WORKING_ASR,
    split: str = "validation",
) -> list[Candidate]:
    """Every (run, defense) pair present in the runs, judged on the models all runs share. ``runs``: run
    name → its records (all of ``split``, see :func:`check_split`); ``describe``: run name → its
    settings per defense name."""
    for run, records in runs.items():
        check_split(run, records, split)
    by_run = {run: {str(r["model"]): r for r in records} for run, records in runs.items()}
    shared = sorted(set.intersection(*(set(models) for models in by_run.values()))) if by_run else []
    if not shared:
        raise ValueError("the runs share no model: run them on the same --datasets / --attacks")
    out = []
    for run, records in by_run.items():
        for defense in defenses:
            rows = [_rows(records[m]) for m in shared]
            picked = [(r.get("none"), r.get(defense)) for r in rows]
            if any(none is None or row is None for none, row in picked):
                continue
            asrs, costs = _asrs_and_costs(picked, working_asr)
            datasets = [str(records[m].get("dataset")) for m in shared]
            out.append(
                Candidate(
                    name=f"{run}/{defense}",
                    describe=_describe(describe.get(run, {}).get(defense)),
                    models=len(shared),
                    working=len(asrs),
                    mean_asr=sum(asrs) / len(asrs) if asrs else 0.0,
                    worst_asr=max(asrs, default=0.0),
                    stopped=sum(a <= 0.10 for a in asrs),
                    mean_cacc_cost=sum(costs) / len(costs),
                    worst_cacc_cost=max(costs),
                    by_dataset=_by_dataset(datasets, picked, working_asr),
                )
            )
    return out


def _asrs_and_costs(
    picked: Sequence[tuple[dict[str, Any], dict[str, Any]]], working_asr: float
) -> tuple[list[float], list[float]]:
    """(undefended row, defended row) pairs → the defended ASR of each working backdoor, and the
    clean-accuracy cost in points of every pair."""
    asrs = [
        float(row["asr"])
        for none, row in picked
        if none.get("asr") is not None and none["asr"] >= working_asr
    ]
    costs = [100.0 * (float(none["cacc"]) - float(row["cacc"])) for none, row in picked]
    return asrs, costs


def _by_dataset(
    datasets: Sequence[str], picked: Sequence[tuple[dict[str, Any], dict[str, Any]]], working_asr: float
) -> tuple[DatasetNumbers, ...]:
    out = []
    for dataset in sorted(set(datasets)):
        pairs = [pair for d, pair in zip(datasets, picked, strict=True) if d == dataset]
        asrs, costs = _asrs_and_costs(pairs, working_asr)
        out.append(
            DatasetNumbers(
                dataset=dataset,
                models=len(pairs),
                working=len(asrs),
                mean_asr=sum(asrs) / len(asrs) if asrs else None,
                mean_cacc_cost=sum(costs) / len(costs),
            )
        )
    return tuple(out)


def _describe(settings: Any) -> str:
    if isinstance(settings, Mapping):
        return ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)
    return str(settings) if settings is not None else ""


def choose(found: Sequence[Candidate], *, max_cacc_cost: float = MAX_CACC_COST) -> Candidate | None:
    """The rule of the module docstring; None when no candidate keeps within the budget."""
    allowed = [c for c in found if c.within(max_cacc_cost)]
    return min(allowed, key=lambda c: (round(c.mean_asr, 6), c.mean_cacc_cost, c.name), default=None)


def choice_markdown(found: Sequence[Candidate], chosen: Candidate | None, *, max_cacc_cost: float) -> str:
    """The comparison as a markdown table, the chosen one in bold, and the rule."""
    rule = (
        f"Rule: the lowest mean ASR over the working backdoors among the setups whose mean clean-accuracy "
        f"cost is at most {max_cacc_cost:g} point(s) overall and on every dataset; validation splits only."
    )
    verdict = f"Chosen: `{chosen.name}`." if chosen else "No candidate keeps within the CACC budget."
    return "\n".join([*_tables(found, chosen), "", rule, verdict, ""])


def report_markdown(found: Sequence[Candidate]) -> str:
    """Test-split runs of setups chosen before: the same tables, nothing chosen."""
    note = (
        "Test splits: the setups as chosen on validation runs (`lab choose`), reported with the same "
        "numbers; nothing is chosen here."
    )
    return "\n".join([*_tables(found, None), "", note, ""])


def _tables(found: Sequence[Candidate], chosen: Candidate | None) -> list[str]:
    lines = [
        "| candidate | setup | working backdoors | mean ASR | worst ASR | ASR ≤ 0.10 | mean CACC cost "
        "| worst |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in sorted(found, key=lambda c: (c.mean_asr, c.mean_cacc_cost, c.name)):
        name = f"**{c.name}** (chosen)" if c is chosen else c.name
        lines.append(
            f"| {name} | {c.describe or '–'} | {c.working} of {c.models} | {c.mean_asr:.3f} | "
            f"{c.worst_asr:.2f} | {c.stopped} | {c.mean_cacc_cost:+.2f} | {c.worst_cacc_cost:+.1f} |"
        )
    return [*lines, "", *dataset_markdown(found, chosen)]


def dataset_cells(found: Sequence[Candidate]) -> tuple[list[str], list[tuple[Candidate, list[str]]]]:
    """The datasets, and per candidate (best first) its "mean ASR / mean CACC cost" on each of them."""
    names = sorted({d.dataset for c in found for d in c.by_dataset})
    rows = []
    for c in sorted(found, key=lambda c: (c.mean_asr, c.mean_cacc_cost, c.name)):
        cells = {d.dataset: d for d in c.by_dataset}
        rows.append((c, [_cell(cells.get(n)) for n in names]))
    return names, rows


def _cell(numbers: DatasetNumbers | None) -> str:
    if numbers is None:
        return "–"
    asr = "–" if numbers.mean_asr is None else f"{numbers.mean_asr:.3f}"
    return f"{asr} / {numbers.mean_cacc_cost:+.2f}"


def dataset_markdown(found: Sequence[Candidate], chosen: Candidate | None) -> list[str]:
    """Per dataset: each candidate's mean ASR over that dataset's working backdoors / mean CACC cost."""
    names, rows = dataset_cells(found)
    if not names:
        return []
    sizes = {d.dataset: (d.working, d.models) for c in found for d in c.by_dataset}
    head = " | ".join(f"{n} ({sizes[n][0]} of {sizes[n][1]}): ASR / cost" for n in names)
    lines = [f"| candidate | {head} |", "|---|" + "---:|" * len(names)]
    for c, shown in rows:
        lines.append(f"| {'**' + c.name + '**' if c is chosen else c.name} | {' | '.join(shown)} |")
    return lines
