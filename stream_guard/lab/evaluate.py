"""Evaluate one trained model against its own attack with several defenses (issue #3's harness).

For the model in ``model_dir`` (its ``meta.json`` names dataset, attack, trigger, target and seeds):
rebuild the validation split (the only data any threshold is calibrated on), the clean test split and
the poisoned test set (every non-target test text with the trigger inserted), run each defense, and
report per defense CACC, ASR, detection precision / recall / FPR (poisoned = positive), AUROC of its
score, and time per 1,000 test texts. See :mod:`stream_guard.lab.defenses.base` for how rejections
count. X-GRAAD also yields the paper's Fig. 2 (score components) and Fig. 3 (threshold sweep).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream_guard.lab.defenses.base import DefenseOutcome
from stream_guard.lab.defenses.rap import RapConfig, run_rap
from stream_guard.lab.defenses.strip import StripConfig, run_strip
from stream_guard.lab.defenses.xgraad import (
    Sweep,
    XGraadConfig,
    component_maxima,
    run_xgraad,
    threshold_sweep,
)
from stream_guard.lab.evalsets import build_eval_sets
from stream_guard.lab.inference import predict_proba, probability_fn
from stream_guard.lab.train_backdoor import read_meta

DEFENSES = ("none", "xgraad-paper", "xgraad", "strip", "rap")


@dataclass(frozen=True)
class EvalOptions:
    defenses: tuple[str, ...] = DEFENSES
    max_val: int = 500
    max_test: int = 500
    max_poisoned: int = 500
    improved: XGraadConfig | None = None  # the "xgraad" defense; None = DefenderSettings defaults
    strip: StripConfig = field(default_factory=StripConfig)
    rap: RapConfig = field(default_factory=RapConfig)
    sweep: bool = True  # the threshold sweep of xgraad-paper (one extra pass that neutralizes all)
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [d for d in self.defenses if d not in DEFENSES]
        if unknown:
            raise ValueError(f"unknown defense(s) {unknown}: choose from {', '.join(DEFENSES)}")


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
        }


def _none_outcome(model, tokenizer, max_length, clean_texts, poisoned_texts) -> DefenseOutcome:
    started = time.perf_counter()
    p_clean = predict_proba(model, tokenizer, clean_texts, max_length=max_length)
    p_poisoned = predict_proba(model, tokenizer, poisoned_texts, max_length=max_length)
    return DefenseOutcome(
        name="none",
        mode="none",
        clean_labels=p_clean.argmax(axis=1),
        clean_flags=np.zeros(len(clean_texts), dtype=bool),
        poisoned_labels=p_poisoned.argmax(axis=1),
        poisoned_flags=np.zeros(len(poisoned_texts), dtype=bool),
        seconds=time.perf_counter() - started,
    )


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
    model, tokenizer = classifier.model, classifier.tokenizer
    sets = build_eval_sets(
        meta,
        tokenizer,
        dataset=dataset,
        max_val=options.max_val,
        max_test=options.max_test,
        max_poisoned=options.max_poisoned,
    )
    target = sets.target
    val_texts, val_labels = sets.validation.texts, sets.validation.labels
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
    )
    base = _none_outcome(model, tokenizer, max_length, clean_texts, poisoned_texts)
    if sets.poisoned is not None and len(sets.poisoned):
        # the ASR floor: the same non-target texts without the trigger, predicted as the target anyway
        originals = predict_proba(model, tokenizer, sets.poisoned.original_texts, max_length=max_length)
        base.extra["asr_without_trigger"] = float((originals.argmax(axis=1) == target).mean())
    outcomes: list[DefenseOutcome] = []
    for name in options.defenses:
        if name == "none":
            outcomes.append(base)
        elif name in ("xgraad-paper", "xgraad"):
            config = XGraadConfig.paper() if name == "xgraad-paper" else (options.improved or XGraadConfig())
            config = XGraadConfig(name, config.settings, config.percentile, config.length_edges)
            run = run_xgraad(
                classifier, config, val_texts, clean_texts, poisoned_texts, progress=options.progress
            )
            outcomes.append(run.outcome)
            if name == "xgraad-paper":
                result.components = {
                    "clean": np.array([component_maxima(v) for v in run.clean_verdicts]).reshape(-1, 3),
                    "poisoned": np.array([component_maxima(v) for v in run.poisoned_verdicts]).reshape(-1, 3),
                }
                if options.sweep:
                    result.sweep = threshold_sweep(
                        classifier,
                        config,
                        run.validation_scores,
                        run.validation_tokens,
                        clean_texts,
                        y,
                        poisoned_texts,
                        target,
                        progress=options.progress,
                    )
                    result.sweep_check = _sweep_check(result.sweep, run.outcome, y, target, config.percentile)
        elif name == "strip":
            held_out = [t for t, lab in zip(val_texts, val_labels, strict=True) if lab != target] or val_texts
            outcome = run_strip(
                probability_fn(model, tokenizer, max_length=max_length),
                val_texts,
                held_out,
                clean_texts,
                poisoned_texts,
                base.clean_labels,
                base.poisoned_labels,
                config=options.strip,
                progress=options.progress,
            )
            outcome.seconds += base.seconds  # STRIP classifies the input itself too
            outcomes.append(outcome)
        elif name == "rap":
            rap_config = RapConfig(**{**options.rap.__dict__, "max_length": max_length})
            outcomes.append(
                run_rap(
                    model,
                    tokenizer,
                    target,
                    val_texts,
                    val_labels,
                    clean_texts,
                    poisoned_texts,
                    config=rap_config,
                    progress=options.progress,
                )
            )
    result.rows = [o.summary(y, target) for o in outcomes]
    result.seconds = time.perf_counter() - started
    return result


def _sweep_check(sweep: Sweep | None, outcome: DefenseOutcome, y: np.ndarray, target: int, p: float):
    """The sweep at the calibrated percentile must reproduce the direct run (a self-check)."""
    if sweep is None or p not in sweep.percentiles:
        return None
    i = sweep.percentiles.index(p)
    summary = outcome.summary(y, target)
    return {
        "percentile": p,
        "direct_cacc": summary["cacc"],
        "sweep_cacc": sweep.cacc[i],
        "direct_asr": summary["asr"],
        "sweep_asr": sweep.asr[i],
        "agree": bool(
            abs(summary["cacc"] - sweep.cacc[i]) < 1e-9
            and (summary["asr"] is None or abs(summary["asr"] - sweep.asr[i]) < 1e-9)
        ),
    }
