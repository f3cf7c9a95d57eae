"""The backdoor lab's data side: poisoning attacks and metrics (no model code).

The datasets and splits it poisons and evaluates on live in :mod:`stream_guard.datasets`, which the
production code (the calibration job) reads too; production code never imports the lab.
Importing this package imports numpy only (no torch, no transformers).
"""

from stream_guard.lab.metrics import (
    DetectionMetrics,
    attack_success_rate,
    auroc,
    clean_accuracy,
    detection_metrics,
    rankdata,
    spearman,
)
from stream_guard.lab.poisoning import (
    WORDPIECE_TRIGGER_PIECES,
    AddSentAttack,
    Attack,
    BadNetsAttack,
    PoisonedDataset,
    poison_dataset,
    poison_test_set,
    split_piece_trigger_examples,
    trigger_pieces,
)

__all__ = [
    "WORDPIECE_TRIGGER_PIECES",
    "AddSentAttack",
    "Attack",
    "BadNetsAttack",
    "DetectionMetrics",
    "PoisonedDataset",
    "attack_success_rate",
    "auroc",
    "clean_accuracy",
    "detection_metrics",
    "poison_dataset",
    "poison_test_set",
    "rankdata",
    "spearman",
    "split_piece_trigger_examples",
    "trigger_pieces",
]
