"""Defenses the lab compares: X-GRAAD (the Defender) and the baselines STRIP and RAP.

Each returns a :class:`~stream_guard.lab.defenses.base.DefenseOutcome` for the clean and the poisoned
test texts: the final label of each text, whether it was flagged, a suspiciousness score (higher =
more suspicious) and the time spent. ONION is not here: it needs a GPT-2 language model, which cannot
be had offline on this machine (see docs/lab/results.md).
"""

from stream_guard.lab.defenses.base import DefenseOutcome, Mode

__all__ = ["DefenseOutcome", "Mode"]
