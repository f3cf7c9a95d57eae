"""Evaluate one trained model against its own attack with several defenses (issue #3's harness).

For the model in ``model_dir`` (its ``meta.json`` names dataset, attack, trigger, target and seeds):
rebuild the validation split (the only data any threshold is calibrated on), the clean test split and
the poisoned test set (every non-target test text with the trigger inserted), then run each defense
named in the options the same way, whatever it is (:func:`~stream_guard.lab.defenses.base.run_defense`:
fit on validation, judge the test texts), and report per defense CACC, ASR, detection precision /
recall / FPR (poisoned = positive), AUROC of its score, and time per 1,000 test texts. See
:mod:`stream_guard.lab.defenses.base` for how rejections count and
:mod:`stream_guard.lab.defenses.registry` for the defenses there are. A defense's analysis may add
figures' data: paper X-GRAAD yields the paper's Fig. 2 (score components) and Fig. 3 (threshold sweep).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream_guard.lab.defenses.base import Analysis, run_defense
from stream_guard.lab.defenses.registry import DefenseContext, EvalOptions, make_defense
from stream_guard.lab.defenses.xgraad import Sweep
from stream_guard.lab.evalsets import build_eval_sets
from stream_guard.lab.model_specs import read_meta

__all__ = ["EvalOptions", "ModelEvaluation", "evaluate_model"]


@dataclass
class ModelEvaluation:
    """Results of one model: a row per defense, plus what the plots need."""

    model: str
    meta: dict[str, Any]
    dataset: str
    rows: list[dict[str, Any]]
    sizes: dict[str, int]
    components: dict[str, np.ndarray] = field(default_factory=dict)  # clean/poisoned -> (N, 3)
    sweep: Sweep | None = None
    sweep_check: dict[str, Any] | None = None
    seconds: float = 0.0
    split: str = "test"  # where the judged texts came from (validation: to choose settings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "attack": self.meta.get("attack"),
            "trigger": self.meta.get("trigger"),
            "target": self.meta.get("target"),
            "meta": self.meta,
            "sizes": self.sizes,
            "rows": self.rows,
            "sweep": None if self.sweep is None else self.sweep.__dict__,
            "sweep_check": self.sweep_check,
            "seconds": round(self.seconds, 1),
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEvaluation:
        """Back from :meth:`to_dict` (e.g. a ``results.json`` record); the figures' components are not kept
        there, so they come back empty. Raises KeyError / TypeError / ValueError on a malformed record."""
        sweep = data.get("sweep")
        rows = [dict(row) for row in data["rows"]]
        if any(not isinstance(row.get("defense"), str) for row in rows):
            raise ValueError("a row without its defense")
        sizes = {key: int(data["sizes"][key]) for key in ("validation", "clean_test", "poisoned_test")}
        return cls(
            model=str(data["model"]),
            meta=dict(data.get("meta") or {}),
            dataset=str(data["dataset"]),
            rows=rows,
            sizes=dict(data["sizes"]) | sizes,
            sweep=None if sweep is None else Sweep(**sweep),
            sweep_check=data.get("sweep_check"),
            seconds=float(data.get("seconds") or 0.0),
            split=str(data.get("split") or "test"),  # records written before the split was: test
        )

    def add_figures(self, analysis: Analysis) -> None:
        """Keep the figures' data a defense's analysis produced."""
        if analysis.components is not None:
            self.components = analysis.components
        if analysis.sweep is not None:
            self.sweep = analysis.sweep
        if analysis.sweep_check is not None:
            self.sweep_check = analysis.sweep_check


def evaluate_model(
    model_dir: Path | str, *, dataset: str | None = None, options: EvalOptions | None = None
) -> ModelEvaluation:
    """Run ``options.defenses`` on the model in ``model_dir``; nothing is calibrated on test data."""
    from stream_guard.loading import load_classifier
    from stream_guard.logs import quiet_transformers

    options = options or EvalOptions()
    quiet_transformers()
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    if meta is None:
        raise FileNotFoundError(
            f"{model_dir}/meta.json not found: train the model with `stream-guard lab train`"
        )
    started = time.perf_counter()
    max_length = int(meta["max_length"])
    classifier = load_classifier(model_dir, device=options.device, max_length=max_length)
    sets = build_eval_sets(
        meta,
        classifier.tokenizer,
        dataset=dataset,
        max_val=options.max_val,
        max_test=options.max_test,
        max_poisoned=options.max_poisoned,
        model_dir=model_dir,
        split=options.split,
    )
    val_texts = sets.validation.texts
    clean_texts, y = sets.test.texts, np.asarray(sets.test.labels)
    poisoned_texts = sets.poisoned.dataset.texts if sets.poisoned is not None else []
    result = ModelEvaluation(
        model=model_dir.name,
        meta=meta,
        dataset=dataset or meta["dataset"],
        rows=[],
        sizes={
            "validation": len(val_texts),
            "clean_test": len(clean_texts),
            "poisoned_test": len(poisoned_texts),
        },
        split=options.split,
    )
    context = DefenseContext(classifier, max_length, sets.target, options)
    for name in options.defenses:
        defense = make_defense(name, context)
        judged = run_defense(defense, sets.validation, clean_texts, poisoned_texts)
        analysis = defense.analyse(sets, judged)
        judged.outcome.extra.update(analysis.row)
        result.add_figures(analysis)
        result.rows.append(judged.outcome.summary(y, sets.target))
    result.seconds = time.perf_counter() - started
    return result
