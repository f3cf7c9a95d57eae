"""X-GRAAD in the lab: the production Defender, its threshold calibrated on the validation split only.

:class:`XGraadConfig` = Defender settings + calibration percentile + optional length buckets.
``XGraadConfig.paper()`` is the paper-faithful setup (noise, 1 word, 1 round, 95th percentile, no
buckets); the "improved" setup is whatever the research helper determined, given as a JSON file::

    {"percentile": 95, "length_edges": [16, 32], "settings": {"strategy": "noise", "max_rounds": 2}}

Besides the verdicts at the calibrated threshold, :func:`threshold_sweep` gives CACC / ASR at every
percentile (the paper's Fig. 3) from one pass at the lowest percentile's threshold: with one round, a
flagged text's neutralized label does not depend on the threshold, and every text flagged at a higher
percentile is flagged at the lowest one too, so each percentile's result is exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from stream_guard.calibration import DEFAULT_PERCENTILE, Calibration, calibrate
from stream_guard.datasets import LabeledDataset
from stream_guard.defender import Defender
from stream_guard.lab.defenses.base import Analysis, Defense, DefenseOutcome, Judged, Judgement, text_ids
from stream_guard.lab.evalsets import EvalSets
from stream_guard.loading import LoadedClassifier
from stream_guard.settings import DefenderSettings
from stream_guard.threshold import Threshold
from stream_guard.verdict import Verdict

SWEEP_PERCENTILES = (45.0, 50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 99.0)
_CHUNK = 128


@dataclass(frozen=True)
class XGraadConfig:
    name: str = "xgraad"
    settings: DefenderSettings = field(default_factory=DefenderSettings)
    percentile: float = DEFAULT_PERCENTILE  # the core's default (docs/lab/research.md)
    length_edges: tuple[int, ...] | None = None

    @classmethod
    def paper(cls) -> XGraadConfig:
        settings = DefenderSettings.paper(threshold=None)  # whatever the defaults are
        return cls("xgraad-paper", settings, 95.0, None)

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "xgraad") -> XGraadConfig:
        edges = data.get("length_edges")
        return cls(
            name=str(data.get("name", name)),
            settings=DefenderSettings(**dict(data.get("settings", {}))),
            percentile=float(data.get("percentile", DEFAULT_PERCENTILE)),
            length_edges=tuple(int(e) for e in edges) if edges else None,
        )

    @classmethod
    def load(cls, path: Path | str, name: str = "xgraad") -> XGraadConfig:
        return cls.from_dict(json.loads(Path(path).read_text()), name)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "percentile": self.percentile,
            "length_edges": list(self.length_edges) if self.length_edges else None,
            "strategy": s.strategy,
            "words_per_round": s.words_per_round,
            "max_rounds": s.max_rounds,
            "span_ratio": s.span_ratio,
            "exclude_stopwords": s.exclude_stopwords,
            "score_normalization": s.score_normalization,
            "word_aggregation": s.word_aggregation,
            "continue_while": s.continue_while,
            "confirm": s.confirm,
        }


def _defender(classifier: LoadedClassifier, config: XGraadConfig) -> Defender:
    settings = config.settings.model_copy(update={"max_length": classifier.max_length, "threshold": None})
    return Defender(classifier, settings)


def _judge(
    defender: Defender,
    texts: Sequence[str],
    ids: Sequence[str],
    *,
    progress: bool = False,
    desc: str = "X-GRAAD",
) -> list[Verdict]:
    """Verdicts with token attributions (the neutralizer's seed depends on the ids)."""
    out: list[Verdict] = []
    with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress) as bar:
        for start in range(0, len(texts), _CHUNK):
            chunk = list(texts[start : start + _CHUNK])
            out.extend(defender.judge(chunk, list(ids[start : start + _CHUNK]), tokens="all"))
            bar.update(len(chunk))
    return out


class XGraadDefense(Defense):
    """The production Defender, calibrated on the validation split; flagged texts are neutralized.

    A judgement's score is the anomaly score S, its evidence the Verdict. With ``figures`` (the paper
    setup), :meth:`analyse` adds the score components of Fig. 2 and, with ``sweep``, the threshold
    sweep of Fig. 3 and its self-check.
    """

    mode = "neutralize"

    def __init__(
        self,
        classifier: LoadedClassifier,
        config: XGraadConfig,
        *,
        figures: bool = False,
        sweep: bool = False,
        progress: bool = False,
    ) -> None:
        self.name = config.name
        self.config = config
        self.classifier = classifier
        self.figures = figures
        self.sweep = sweep
        self.progress = progress
        self.defender = _defender(classifier, config)
        self.calibration: Calibration | None = None

    def fit(self, validation: LabeledDataset) -> None:
        cfg = self.config
        cal = calibrate(
            self.defender, validation.texts, percentile=cfg.percentile, length_edges=cfg.length_edges
        )
        self.defender.set_threshold(cal.threshold)
        self.calibration = cal
        self.threshold = cal.threshold.value

    def judge(self, texts: Sequence[str], ids: Sequence[str]) -> list[Judgement]:
        verdicts = _judge(self.defender, texts, ids, progress=self.progress, desc=self.name)
        return [Judgement(v.final_label, v.flagged, v.anomaly_score, evidence=v) for v in verdicts]

    def details(self) -> dict[str, Any]:
        if self.calibration is None:
            raise RuntimeError("fit X-GRAAD first")
        return {"val_flag_rate": self.calibration.clean_flag_rate(), **self.config.describe()}

    def analyse(self, sets: EvalSets, judged: Judged) -> Analysis:
        if not self.figures:
            return Analysis()
        components = {
            "clean": np.array([component_maxima(j.evidence) for j in judged.clean]).reshape(-1, 3),
            "poisoned": np.array([component_maxima(j.evidence) for j in judged.poisoned]).reshape(-1, 3),
        }
        if not self.sweep or self.calibration is None:
            return Analysis(components=components)
        y = np.asarray(sets.test.labels)
        poisoned_texts = sets.poisoned.dataset.texts if sets.poisoned is not None else []
        sweep = threshold_sweep(
            self.classifier,
            self.config,
            self.calibration.scores,
            self.calibration.n_tokens,
            sets.test.texts,
            y,
            poisoned_texts,
            sets.target,
            progress=self.progress,
        )
        check = sweep_check(sweep, judged.outcome, y, sets.target, self.config.percentile)
        return Analysis(components=components, sweep=sweep, sweep_check=check)


def component_maxima(verdict: Verdict) -> tuple[float, float, float]:
    """(max attention score s_a, max gradient score s_g, combined S) of one verdict (Eqs. 5, 6, 8)."""
    cands = [t for t in verdict.tokens if t.candidate]
    if not cands:
        return 0.0, 0.0, verdict.anomaly_score
    a = np.array([t.attention for t in cands])
    g = np.array([t.gradient for t in cands])
    s_g = g / g.mean() if g.mean() > 0 else np.zeros_like(g)
    return float((a - a.mean()).max()), float(s_g.max()), verdict.anomaly_score


@dataclass
class Sweep:
    """CACC and ASR of a one-round X-GRAAD setting at each calibration percentile (paper Fig. 3)."""

    percentiles: list[float]
    cacc: list[float]
    asr: list[float]
    flag_rate_clean: list[float]
    flag_rate_poisoned: list[float]


def threshold_sweep(
    classifier: LoadedClassifier,
    config: XGraadConfig,
    validation_scores: np.ndarray,
    validation_tokens: np.ndarray,
    clean_texts: Sequence[str],
    clean_labels: Sequence[int],
    poisoned_texts: Sequence[str],
    target: int,
    percentiles: Sequence[float] = SWEEP_PERCENTILES,
    *,
    progress: bool = False,
) -> Sweep | None:
    """Judge once at the lowest percentile, then apply each percentile's threshold; None if multi-round."""
    from stream_guard.calibration import bucket_thresholds

    if config.settings.max_rounds != 1:
        return None

    def at(p: float) -> Threshold:
        if config.length_edges:
            buckets, tail = bucket_thresholds(validation_scores, validation_tokens, p, config.length_edges)
            return Threshold(value=tail, by_length=tuple(buckets))
        return Threshold(value=float(np.percentile(validation_scores, p)))

    defender = _defender(classifier, config)
    defender.set_threshold(at(min(percentiles)))
    clean = _judge(
        defender, clean_texts, text_ids("c", len(clean_texts)), progress=progress, desc="sweep clean"
    )
    poisoned_ids = text_ids("p", len(poisoned_texts))
    poisoned = _judge(defender, poisoned_texts, poisoned_ids, progress=progress, desc="sweep poisoned")
    y = np.asarray(clean_labels)
    out = Sweep([], [], [], [], [])
    for p in sorted(percentiles):
        threshold = at(p)

        def final(vs: list[Verdict], limit: Threshold = threshold) -> tuple[np.ndarray, np.ndarray]:
            flags = np.array([v.flagged and v.anomaly_score > limit.for_length(v.n_tokens) for v in vs], bool)
            labels = np.array([v.final_label if f else v.label for v, f in zip(vs, flags, strict=True)])
            return labels, flags

        c_labels, c_flags = final(clean)
        p_labels, p_flags = final(poisoned)
        out.percentiles.append(float(p))
        out.cacc.append(float((c_labels == y).mean()))
        out.asr.append(float((p_labels == target).mean()) if len(p_labels) else float("nan"))
        out.flag_rate_clean.append(float(c_flags.mean()))
        out.flag_rate_poisoned.append(float(p_flags.mean()) if len(p_flags) else float("nan"))
    return out


def sweep_check(sweep: Sweep | None, outcome: DefenseOutcome, y: np.ndarray, target: int, p: float):
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
