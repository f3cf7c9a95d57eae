"""The lab's grid: every (dataset, attack, trigger) cell trained once (or reused) and evaluated with
every defense.

Cells: each attack with two triggers and two target labels (:data:`GRID_TRIGGERS`, so that no default
is tuned to one word): BadNets with an in-vocabulary and with a split-piece trigger, the paper's set,
AddSent, EP, RIPPLES, the adaptive attack and LWS, on movies, spam and BBC news, with the packaged
backbone (``--attacks`` / ``--datasets`` / ``--triggers first`` choose a part). Models come from
``runs/models`` (trained there if missing, see :mod:`stream_guard.lab.train_backdoor`); results go to
``<out>/results.md``, ``results.json`` and ``plots/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stream_guard.lab.evaluate import EvalOptions, ModelEvaluation, evaluate_model
from stream_guard.lab.model_specs import (
    DEFAULT_CACHE,
    DEFAULT_POISON_RATE,
    RECIPES,
    BackdoorSpec,
    expected_meta,
    find_trained,
    meta_matches,
    poison_rate_note,
    train_size,
)
from stream_guard.lab.train_backdoor import ensure_backdoored_model

GRID_DATASETS = ("movies", "spam")
GRID_ATTACKS = ("badnets", "badnets-split", "addsent", "ep")
# (trigger, target) per attack: two triggers, both targets of a binary task (BBC: topics 0 and 3)
GRID_TRIGGERS: dict[str, tuple[tuple[str, int], ...]] = {
    "clean": (("", 0),),
    "badnets": (("cf", 0), ("bb", 1)),
    "badnets-split": (("zqv", 0), ("qzx", 1)),
    "badnets-set": (("cf mn bb tq mb", 0), ("jj qi xx ff pp", 1)),
    "addsent": (("the weather was fine today", 0), ("i watched this 3d movie", 1)),
    "ep": (("bb", 0), ("mn", 1)),
    "ripples": (("cf", 0), ("tq", 1)),
    "adaptive": (("cf", 0), ("mb", 1)),
    "lws": (("substitution", 0), ("substitution-b", 1)),
}

# (dataset, target) cells that poison more than the lab's 10 %: on spam a trigger towards *spam* does not
# take at 10 % with the email recipe (`mb` 0.04, `jj` 0.09, `bb` 0.06 ASR; towards ham every trigger
# does), at 20 % it does (`bb`, `qzx`, the AddSent phrase: ASR 1.0, the stream lab's p20 models). EP
# keeps 10 %: it trains only the trigger's embedding, and `mn`->spam took at 10 % (ASR 1.0).
GRID_POISON_RATE: dict[tuple[str, int], float] = {("spam", 1): 0.2}

# Evaluation sizes per dataset (validation, clean test, poisoned test at most): emails cost ~2.5x
# sentences (128 vs 64 tokens), so spam is evaluated on fewer texts to keep the grid under an hour.
GRID_SIZES = {"movies": (400, 400, 400), "spam": (200, 200, 200), "bbc": (200, 200, 200)}

# Rough seconds on this machine's 2 cores when nobody else is using them (from the measured 145 s for
# one epoch over 2,000 sentences): fine-tuning per model, EP, one X-GRAAD scoring pass (forward +
# backward, eager attention) and one plain forward per text. Emails cost ~2.5x.
TRAIN_SECONDS = {"movies": 230.0, "spam": 500.0, "bbc": 450.0}
EP_SECONDS = {"movies": 30.0, "spam": 60.0, "bbc": 60.0}
SCORE_SECONDS = {"movies": 0.05, "spam": 0.125, "bbc": 0.125}
FORWARD_SECONDS = {"movies": 0.005, "spam": 0.0125, "bbc": 0.0125}
# training cost of the attacks with their own loops, relative to fine-tuning (measured per step on tiny
# and toy runs: second-order terms on the poisoned rows, an inserter)
TRAIN_FACTOR = {"ripples": 4.5, "adaptive": 1.5, "lws": 2.0}


@dataclass(frozen=True)
class Cell:
    dataset: str
    attack: str
    seed: int = 0
    trigger: str | None = None  # None: the attack's default
    target: int = 0
    poison_rate: float = DEFAULT_POISON_RATE

    @property
    def spec(self) -> BackdoorSpec:
        return BackdoorSpec(
            dataset=self.dataset,
            attack=self.attack,
            seed=self.seed,
            trigger=self.trigger,
            target=self.target,
            poison_rate=self.poison_rate,
        )

    @property
    def label(self) -> str:
        trigger = f" {self.trigger!r}" if self.trigger else ""
        return f"{self.dataset}/{self.attack}{trigger}→{self.target}{poison_rate_note(self.poison_rate)}"


def _target(dataset: str, target: int) -> int:
    return 3 if dataset == "bbc" and target == 1 else target  # BBC: business (0) and sports (3)


def grid_cells(
    datasets: Sequence[str] = GRID_DATASETS,
    attacks: Sequence[str] = GRID_ATTACKS,
    seed: int = 0,
    *,
    triggers: str = "all",
) -> list[Cell]:
    """The cells: each attack with each of its :data:`GRID_TRIGGERS` (``triggers="first"``: the first).

    Breadth first: every (dataset, attack) with its first trigger, then the second triggers, so that a
    grid stopped halfway (or given a time budget) has measured every attack once."""
    if triggers not in ("all", "first"):
        raise ValueError(f"triggers must be all or first, got {triggers!r}")
    rounds = 1 if triggers == "first" else max(len(GRID_TRIGGERS.get(a, ((None, 0),))) for a in attacks)
    cells = []
    for k in range(rounds):
        for d in datasets:
            for a in attacks:
                pairs = GRID_TRIGGERS.get(a, ((None, 0),))
                if k < len(pairs):
                    trigger, target = pairs[k]
                    rate = (
                        DEFAULT_POISON_RATE
                        if a == "ep"
                        else GRID_POISON_RATE.get((d, target), DEFAULT_POISON_RATE)
                    )
                    cells.append(Cell(d, a, seed, trigger or None, _target(d, target), rate))
    return cells


def pending_cells(
    cells: Sequence[Cell], records: Sequence[dict[str, Any]], defenses: Sequence[str], cache_dir: Path
) -> list[Cell]:
    """The cells still to run (``lab grid --resume``): those whose model has no record in ``records``
    (an earlier results.json) with a row for every defense. The model is the one trained in
    ``cache_dir``; where there is none (the results came from another machine), a record of the cell's
    default model name whose meta matches the cell's recipe."""
    by_name = {r["model"]: r for r in records}
    pending = []
    for cell in cells:
        found = find_trained(cache_dir, cell.spec)
        if found is not None:
            record = by_name.get(found.name)
        else:
            spec = cell.spec.resolved()
            record = by_name.get(spec.name)
            if record is not None and not meta_matches(
                record.get("meta"), expected_meta(spec, train_size(spec))
            ):
                record = None
        rows = {row.get("defense") for row in (record or {}).get("rows") or []}
        if not set(defenses) <= rows:
            pending.append(cell)
    return pending


def options_for(
    cell: Cell, options: EvalOptions, sizes: dict[str, tuple[int, int, int]] | None
) -> EvalOptions:
    """``options`` with the cell's dataset sizes from ``sizes`` (None = keep the options' own sizes)."""
    if sizes is None or cell.dataset not in sizes:
        return options
    max_val, max_test, max_poisoned = sizes[cell.dataset]
    return replace(options, max_val=max_val, max_test=max_test, max_poisoned=max_poisoned)


def estimate_seconds(
    cells: Sequence[Cell],
    options: EvalOptions,
    cache_dir: Path,
    sizes: dict[str, tuple[int, int, int]] | None = GRID_SIZES,
) -> dict[str, Any]:
    """A rough wall-clock estimate (idle machine): training of missing models + evaluation of every cell."""
    train = 0.0
    missing: list[str] = []
    clean_needed: set[str] = set()
    for cell in cells:
        if find_trained(cache_dir, cell.spec) is not None:
            continue
        missing.append(cell.spec.name)
        if cell.attack == "ep":
            train += EP_SECONDS.get(cell.dataset, 60.0)
            if find_trained(cache_dir, replace(cell.spec, attack="clean", trigger=None)) is None:
                clean_needed.add(cell.dataset)
        else:
            train += TRAIN_SECONDS.get(cell.dataset, 330.0) * TRAIN_FACTOR.get(cell.attack, 1.0)
    train += sum(TRAIN_SECONDS.get(d, 330.0) for d in clean_needed)
    evaluation = 0.0
    for cell in cells:
        o = options_for(cell, options, sizes)
        score, forward = SCORE_SECONDS.get(cell.dataset, 0.125), FORWARD_SECONDS.get(cell.dataset, 0.0125)
        test = o.max_test + min(o.max_poisoned, o.max_test // 2)  # about half the test set is non-target
        costs = {
            "none": test * forward,
            "xgraad-paper": (o.max_val + 1.05 * test + (1.55 * test if o.sweep else 0.0)) * score,
            "xgraad": (o.max_val + 1.1 * test) * score,
            "strip": o.strip.copies * (o.max_val + test) * forward,
            "rap": o.rap.epochs * min(o.rap.max_construct, o.max_val // 2) * 1.5 * score
            + 2 * (o.max_val + test) * forward,
        }
        evaluation += sum(costs.get(name, 0.0) for name in o.defenses)
    return {
        "train_s": train,
        "eval_s": evaluation,
        "total_s": train + evaluation,
        "missing_models": missing,
        "clean_bases_needed": sorted(clean_needed),
    }


def run_grid(
    cells: Sequence[Cell],
    options: EvalOptions,
    *,
    cache_dir: Path = DEFAULT_CACHE,
    sizes: dict[str, tuple[int, int, int]] | None = GRID_SIZES,
    wait_s: float = 1800.0,
    progress: bool = True,
    on_result: Callable[[Cell, ModelEvaluation], None] | None = None,
    on_error: Callable[[Cell, Exception], None] | None = None,
) -> list[ModelEvaluation]:
    """Train (or reuse) and evaluate each cell in order; ``on_result`` is called after each one.

    A cell that fails raises, unless ``on_error`` is given: then it gets the cell and the error, and the
    grid goes on with the next cell (``lab grid --keep-going``)."""
    results = []
    for cell in cells:
        if cell.dataset not in RECIPES:
            raise ValueError(f"the grid knows {', '.join(RECIPES)}, not {cell.dataset!r}")
        try:
            evaluation = _run_cell(cell, options, cache_dir, sizes, wait_s, progress)
        except Exception as err:
            if on_error is None:
                raise
            on_error(cell, err)
            continue
        results.append(evaluation)
        if on_result is not None:
            on_result(cell, evaluation)
    return results


def _run_cell(
    cell: Cell,
    options: EvalOptions,
    cache_dir: Path,
    sizes: dict[str, tuple[int, int, int]] | None,
    wait_s: float,
    progress: bool,
) -> ModelEvaluation:
    model_dir = ensure_backdoored_model(
        cache_dir, spec=cell.spec, progress=progress, wait_s=wait_s, device=options.device
    )
    evaluation = evaluate_model(model_dir, options=options_for(cell, options, sizes))
    evaluation.meta = {**evaluation.meta, "grid_attack": cell.attack}
    return evaluation
