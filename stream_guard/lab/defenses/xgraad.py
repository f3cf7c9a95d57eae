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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from stream_guard.calibration import DEFAULT_PERCENTILE, calibrate
from stream_guard.defender import Defender
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
            "exclude_stopwords": s.exclude_stopwords,
            "score_normalization": s.score_normalization,
            "word_aggregation": s.word_aggregation,
            "continue_while": s.continue_while,
            "confirm": s.confirm,
        }


@dataclass
class XGraadRun:
    """Verdicts on the test texts at the calibrated threshold, and the calibration scores."""

    outcome: Any  # DefenseOutcome
    clean_verdicts: list[Verdict]
    poisoned_verdicts: list[Verdict]
    validation_scores: np.ndarray
    validation_tokens: np.ndarray


def _defender(classifier: LoadedClassifier, config: XGraadConfig) -> Defender:
    settings = config.settings.model_copy(update={"max_length": classifier.max_length, "threshold": None})
    return Defender(classifier, settings)


def _judge(
    defender: Defender, texts: Sequence[str], prefix: str, *, progress: bool = False, desc: str = "X-GRAAD"
) -> list[Verdict]:
    """Verdicts with token attributions, ids ``<prefix><index>`` (the neutralizer's seed depends on them)."""
    out: list[Verdict] = []
    with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress) as bar:
        for start in range(0, len(texts), _CHUNK):
            chunk = list(texts[start : start + _CHUNK])
            ids = [f"{prefix}{start + i}" for i in range(len(chunk))]
            out.extend(defender.judge(chunk, ids, tokens="all"))
            bar.update(len(chunk))
    return out


def run_xgraad(
    classifier: LoadedClassifier,
    config: XGraadConfig,
    validation: Sequence[str],
    clean_texts: Sequence[str],
    poisoned_texts: Sequence[str],
    *,
    progress: bool = False,
) -> XGraadRun:
    """Calibrate on ``validation``, then judge the clean and poisoned test texts."""
    from stream_guard.lab.defenses.base import DefenseOutcome

    defender = _defender(classifier, config)
    started = time.perf_counter()
    cal = calibrate(defender, validation, percentile=config.percentile, length_edges=config.length_edges)
    defender.set_threshold(cal.threshold)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    clean = _judge(defender, clean_texts, "c", progress=progress, desc=f"{config.name} clean")
    poisoned = _judge(defender, poisoned_texts, "p", progress=progress, desc=f"{config.name} poisoned")
    seconds = time.perf_counter() - started
    outcome = DefenseOutcome(
        name=config.name,
        mode="neutralize",
        clean_labels=np.array([v.final_label for v in clean], dtype=np.int64),
        clean_flags=np.array([v.flagged for v in clean], dtype=bool),
        poisoned_labels=np.array([v.final_label for v in poisoned], dtype=np.int64),
        poisoned_flags=np.array([v.flagged for v in poisoned], dtype=bool),
        seconds=seconds,
        setup_seconds=setup,
        clean_scores=np.array([v.anomaly_score for v in clean]),
        poisoned_scores=np.array([v.anomaly_score for v in poisoned]),
        threshold=cal.threshold.value,
        extra={"val_flag_rate": cal.clean_flag_rate(), **config.describe()},
    )
    return XGraadRun(outcome, clean, poisoned, cal.scores, cal.n_tokens)


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
    clean = _judge(defender, clean_texts, "c", progress=progress, desc="sweep clean")
    poisoned = _judge(defender, poisoned_texts, "p", progress=progress, desc="sweep poisoned")
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
