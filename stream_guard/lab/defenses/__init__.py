"""Defenses the lab compares, behind one interface: X-GRAAD (the Defender), the baselines ONION, STRIP
and RAP, and the model alone.

Each is a :class:`~stream_guard.lab.defenses.base.Defense` (``fit`` on the clean validation split, then
``judge`` texts -> one :class:`~stream_guard.lab.defenses.base.Judgement` each: final label, flagged,
a suspiciousness score) in its own module, and a line in :mod:`~stream_guard.lab.defenses.registry`.
ONION needs a causal language model: the optional extra ``lab-onion`` (docs/lab/onion.md).

Importing this package imports numpy only; the registry and the defenses load torch.
"""

from stream_guard.lab.defenses.base import (
    Analysis,
    Defense,
    DefenseOutcome,
    Judged,
    Judgement,
    Mode,
    run_defense,
)

__all__ = ["Analysis", "Defense", "DefenseOutcome", "Judged", "Judgement", "Mode", "run_defense"]
