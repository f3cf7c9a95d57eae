"""The lab's figures (matplotlib, Agg backend: no display needed).

- :func:`plot_score_distributions`: clean vs poisoned distributions of the max attention score, the
  max gradient score and the combined anomaly score S (the paper's Fig. 2);
- :func:`plot_threshold_sweep`: CACC and ASR against the calibration percentile (the paper's Fig. 3).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from stream_guard.lab.defenses.xgraad import Sweep

COMPONENTS = ("max attention score (Eq. 5)", "max gradient score (Eq. 6)", "anomaly score S (Eq. 8)")


def plot_score_distributions(
    clean: np.ndarray, poisoned: np.ndarray, path: Path, title: str, threshold: float | None = None
) -> Path:
    """``clean`` (Nc, 3) and ``poisoned`` (Np, 3) component maxima -> a 3-panel histogram PNG."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for k, ax in enumerate(axes):
        c = clean[:, k] if clean.size else np.array([])
        p = poisoned[:, k] if poisoned.size else np.array([])
        both = np.concatenate([c, p])
        bins = np.linspace(both.min(), both.max(), 40) if both.size and both.max() > both.min() else 20
        if c.size:
            ax.hist(c, bins=bins, alpha=0.6, density=True, label=f"clean (n={c.size})", color="tab:blue")
        if p.size:
            ax.hist(p, bins=bins, alpha=0.6, density=True, label=f"poisoned (n={p.size})", color="tab:red")
        if k == 2 and threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
        ax.set_title(COMPONENTS[k], fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_threshold_sweep(sweep: Sweep, path: Path, title: str) -> Path:
    """CACC and ASR (and the clean flag rate) against the threshold percentile."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sweep.percentiles, sweep.cacc, marker="o", label="CACC")
    ax.plot(sweep.percentiles, sweep.asr, marker="s", label="ASR")
    ax.plot(sweep.percentiles, sweep.flag_rate_clean, linestyle=":", color="gray", label="clean flagged")
    ax.set_xlabel("threshold percentile of clean validation scores")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
