"""The backdoor lab's data side: datasets, splits, poisoning attacks and metrics (no model code).

Importing this package imports numpy only (no torch, no transformers).
"""

from stream_guard.lab.datasets import (
    BUILTIN_DATASETS,
    DatasetError,
    LabeledDataset,
    encode_labels,
    load_dataset,
)
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
from stream_guard.lab.splits import Splits, deduplicate, normalize_text, split_dataset

__all__ = [
    "BUILTIN_DATASETS",
    "WORDPIECE_TRIGGER_PIECES",
    "AddSentAttack",
    "Attack",
    "BadNetsAttack",
    "DatasetError",
    "DetectionMetrics",
    "LabeledDataset",
    "PoisonedDataset",
    "Splits",
    "attack_success_rate",
    "auroc",
    "clean_accuracy",
    "deduplicate",
    "detection_metrics",
    "encode_labels",
    "load_dataset",
    "normalize_text",
    "poison_dataset",
    "poison_test_set",
    "rankdata",
    "spearman",
    "split_dataset",
    "split_piece_trigger_examples",
    "trigger_pieces",
]
