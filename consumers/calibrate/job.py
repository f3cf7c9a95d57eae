"""The calibration job: score clean texts, take a percentile, write or publish the ThresholdUpdate.

The threshold τ is the ``percentile``-th percentile of the anomaly score S on **clean** texts held apart
from any test data (DESIGN §2): for a lab dataset (``movies``, ``spam``, …) that is its validation split
(``split_dataset``, same seed as the lab); a local ``.csv``/``.tsv``/``.jsonl``/``.txt`` file is taken as
it is, every row a clean text. The percentile and the optional per-length buckets come from
:func:`stream_guard.calibration.calibrate`; this module adds the progress bar, the wire record
(:class:`schemas.ThresholdUpdate`, keyed by the model's fingerprint) and its two destinations:

* ``--output FILE.json``: written atomically (temporary file, then rename);
* ``--publish``: produced to the thresholds topic with ``acks=all`` and idempotence, keyed by ``model_id``
  so that every update of one model lands on one partition in order; the job flushes and waits for the
  delivery report, and fails (exit 1) unless the broker confirmed the write. With an update key
  (``STREAM_GUARD_UPDATE_KEY`` / ``_KEY_FILE``, :mod:`consumers.pipeline.update_settings`) the update is
  signed first, so that workers holding the key apply it.

The command is :mod:`consumers.cli.calibrate`. confluent_kafka is imported inside :func:`publish_update`
only, so ``stream-guard --help`` stays fast.
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson
import structlog
from tqdm.auto import tqdm

from consumers.kafka.publish import PublishError as PublishError  # re-exported: callers catch it here
from consumers.pipeline.update_settings import (
    UpdateChannelError,
    UpdateChannelSettings,
    update_channel_from_env,
)
from schemas import CalibrationSummary, LengthBucket, ThresholdUpdate, encode, make_threshold_version, utc_now
from stream_guard.calibration import Calibration, calibrate

if TYPE_CHECKING:  # `stream-guard --help` imports this module: no torch until a job runs
    from stream_guard.defender import Defender
    from stream_guard.scores import TextScores

log = structlog.get_logger(__name__)

DEFAULT_PERCENTILE: float = float(inspect.signature(calibrate).parameters["percentile"].default)
"""The core's default percentile (the paper's 95th)."""
DEFAULT_THRESHOLDS_TOPIC = "thresholds"
TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".txt")
_CHUNK = 128  # texts per progress-bar step


class CalibrationInputError(ValueError):
    """The calibration texts cannot be used (message is one line)."""


@dataclass(frozen=True)
class CleanTexts:
    """Clean calibration texts and a short name of where they came from (``movies/validation``)."""

    name: str
    texts: list[str]


# --------------------------------------------------------------------------- input


def load_clean_texts(
    dataset: str, *, text_column: str = "text", max_texts: int | None = None, seed: int = 0
) -> CleanTexts:
    """The clean texts of a lab dataset's validation split, or of a local file.

    ``max_texts`` keeps a seeded subset (for a lab dataset a stratified one, which never moves a text
    between splits). Raises :class:`CalibrationInputError` with a one-line message on bad input.
    """
    from stream_guard.datasets import BUILTIN_DATASETS, DatasetError, load_dataset, split_dataset

    if max_texts is not None and max_texts < 1:
        raise CalibrationInputError(f"--max-texts must be >= 1, got {max_texts}")
    if dataset in BUILTIN_DATASETS:
        try:
            validation = split_dataset(load_dataset(dataset), seed=seed, max_val=max_texts).validation
        except DatasetError as err:
            raise CalibrationInputError(str(err)) from None
        return CleanTexts(f"{dataset}/validation", list(validation.texts))
    path = Path(dataset).expanduser()
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise CalibrationInputError(
            f"unknown dataset {dataset!r}: use one of {', '.join(BUILTIN_DATASETS)} "
            f"or a {'/'.join(TEXT_SUFFIXES)} file of clean texts"
        )
    if not path.is_file():
        raise CalibrationInputError(f"dataset file not found: {path}")
    try:
        texts = _read_texts(path, text_column)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CalibrationInputError(f"cannot read {path}: {err}".splitlines()[0]) from None
    if not texts:
        raise CalibrationInputError(f"{path} contains no texts")
    if max_texts is not None and max_texts < len(texts):
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), max_texts, replace=False))
        texts = [texts[i] for i in keep]
    return CleanTexts(path.name, texts)


def _read_texts(path: Path, column: str) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [line.rstrip("\r\n") for line in path.read_text("utf-8-sig").splitlines() if line.strip()]
    if suffix == ".jsonl":
        rows: list[tuple[int, Any]] = []
        for number, line in enumerate(path.read_text("utf-8-sig").splitlines(), start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise CalibrationInputError(f"{path}:{number}: invalid JSON ({err.msg})") from None
                # a line is either {"text": ...} or a bare JSON string
                rows.append((number, record.get(column) if isinstance(record, dict) else record))
    else:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            if column not in (reader.fieldnames or []):
                found = ", ".join(reader.fieldnames or []) or "none"
                raise CalibrationInputError(f"{path}: no column {column!r} (columns: {found})")
            rows = [(reader.line_num, row.get(column)) for row in reader]
    for number, text in rows:
        if not isinstance(text, str) or not text.strip():
            raise CalibrationInputError(f"{path}:{number}: no text in {column!r} (empty or not a string)")
    return [cast(str, text) for _, text in rows]


def parse_length_edges(raw: str | None) -> list[int] | None:
    """``"16,32,64"`` → ``[16, 32, 64]``; ``None``/empty → ``None``."""
    if raw is None or not raw.strip():
        return None
    try:
        edges = [int(part) for part in raw.replace(" ", "").split(",") if part]
    except ValueError:
        raise CalibrationInputError(
            f"--length-edges must be token counts like 16,32,64, got {raw!r}"
        ) from None
    if any(edge < 1 for edge in edges):
        raise CalibrationInputError(f"--length-edges must be positive token counts, got {raw!r}")
    return sorted(set(edges)) or None


# --------------------------------------------------------------------------- calibration


class _ProgressScorer:
    """Stands in for the Defender inside ``calibrate``: scores in chunks and advances a progress bar."""

    def __init__(self, defender: Defender, progress: bool) -> None:
        self._defender = defender
        self._progress = progress

    def score(self, texts: Sequence[str]) -> list[TextScores]:
        # sorting by length keeps each chunk's padding small; results go back to input order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        scored: list[TextScores | None] = [None] * len(texts)
        disable = None if self._progress else True  # None: shown on a terminal only
        with tqdm(total=len(texts), desc="calibrating", unit="text", disable=disable) as bar:
            for start in range(0, len(order), _CHUNK):
                chunk = order[start : start + _CHUNK]
                for index, result in zip(chunk, self._defender.score([texts[i] for i in chunk]), strict=True):
                    scored[index] = result
                bar.update(len(chunk))
        return cast("list[TextScores]", scored)


def run_calibration(
    defender: Defender,
    clean: CleanTexts,
    *,
    percentile: float = DEFAULT_PERCENTILE,
    length_edges: Sequence[int] | None = None,
    confidence_quantile: float | None = None,
    progress: bool = True,
) -> tuple[Calibration, ThresholdUpdate]:
    """Calibrate ``defender`` on ``clean`` and build the wire update (not yet written anywhere)."""
    if not 0.0 < percentile < 100.0:
        raise CalibrationInputError(f"--percentile must be in (0, 100), got {percentile:g}")
    scorer = cast("Defender", _ProgressScorer(defender, progress))
    if confidence_quantile is not None and not 0.0 <= confidence_quantile <= 1.0:
        raise CalibrationInputError(f"--confidence-quantile must be in [0, 1], got {confidence_quantile:g}")
    calibration = calibrate(
        scorer,
        clean.texts,
        percentile=percentile,
        length_edges=length_edges,
        confidence_quantile=confidence_quantile,
    )
    return calibration, threshold_update(calibration, defender.model_id, clean.name)


def threshold_update(calibration: Calibration, model_id: str, dataset: str) -> ThresholdUpdate:
    """The :class:`ThresholdUpdate` for a calibration result."""
    threshold = calibration.threshold
    created_at = utc_now()
    stats = calibration.summary()
    quantiles = {key.removeprefix("p"): value for key, value in cast(dict, stats["quantiles"]).items()}
    quantiles[f"{calibration.percentile:g}"] = float(
        np.percentile(calibration.scores, calibration.percentile)
    )
    return ThresholdUpdate(
        model_id=model_id,
        version=make_threshold_version(created_at, model_id, threshold.value, calibration.percentile),
        value=threshold.value,
        percentile=calibration.percentile,
        by_length=[LengthBucket(max_tokens=m, value=v) for m, v in threshold.by_length] or None,
        min_confidence=threshold.min_confidence,
        calibration=CalibrationSummary(
            dataset=dataset,
            n_texts=cast(int, stats["n_texts"]),
            score_mean=cast(float, stats["score_mean"]),
            score_std=cast(float, stats["score_std"]),
            score_min=cast(float, stats["score_min"]),
            score_max=cast(float, stats["score_max"]),
            quantiles=dict(sorted(quantiles.items(), key=lambda kv: float(kv[0]))),
        ),
        created_at=created_at,
    )


# --------------------------------------------------------------------------- outputs


def write_update(update: ThresholdUpdate, path: Path) -> None:
    """Write the update as indented JSON, atomically."""
    path = path.expanduser()
    if not path.parent.is_dir():
        raise CalibrationInputError(f"cannot write {path}: directory {path.parent} does not exist")
    data = orjson.dumps(
        update.model_dump(mode="json"), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise CalibrationInputError(f"cannot write {path}: {err}") from None


def publish_update(
    update: ThresholdUpdate,
    producer_config: dict[str, Any],
    topic: str,
    *,
    timeout: float = 30.0,
    admin_config: dict[str, Any] | None = None,
    channel: UpdateChannelSettings | None = None,
) -> tuple[int, int]:
    """Produce the update to ``topic`` (key = model id) and wait for the broker's ack
    (:func:`consumers.kafka.publish.publish_record`, the one publisher of operator updates).

    The update is signed when ``channel`` (by default read from the environment) has a key. With
    ``admin_config`` the topic is created first when missing (1 partition, compacted). Returns the
    ``(partition, offset)`` the broker confirmed; raises :class:`PublishError` otherwise, and
    :class:`CalibrationInputError` when the update channel's settings are unusable.
    """
    from consumers.kafka.publish import publish_record

    try:
        channel = channel if channel is not None else update_channel_from_env()
    except UpdateChannelError as err:
        raise CalibrationInputError(str(err)) from None
    update = channel.sign(update)
    where = publish_record(
        topic,
        update.model_id.encode(),
        encode(update),
        producer_config,
        what="threshold",
        timeout=timeout,
        admin_config=admin_config,
    )
    log.info(
        "threshold published", topic=topic, offset=where[1], version=update.version, signed=channel.signed
    )
    return where


# --------------------------------------------------------------------------- summary


def summary_lines(calibration: Calibration, update: ThresholdUpdate) -> list[str]:
    """What a person wants to see after a calibration, one fact per line."""
    cal = update.calibration
    q = cal.quantiles
    lines = [
        f"model        {update.model_id}",
        f"calibrated   {cal.n_texts:,} clean texts of {cal.dataset}",
        f"percentile   {update.percentile:g}  ->  threshold {update.value:.4f}  (version {update.version})",
    ]
    if update.by_length:
        lower = 0
        for bucket in update.by_length:
            lines.append(f"  {lower + 1:>4}-{bucket.max_tokens:<4} tokens   {bucket.value:.4f}")
            lower = bucket.max_tokens
        lines.append(f"  {lower + 1:>4}+     tokens   {update.value:.4f}")
    if update.min_confidence is not None:
        lines.append(f"confidence   a flag also needs confidence >= {update.min_confidence:.4f}")
    lines.append(
        f"scores       mean {cal.score_mean:.4f}  std {cal.score_std:.4f}  "
        + "  ".join(f"p{k} {v:.4f}" for k, v in q.items())
    )
    lines.append(
        f"clean flag rate  {calibration.clean_flag_rate():.1%} of the calibration texts score above it"
    )
    bar = update.learn_bar
    if bar is not None:
        strongest = f"{bar.strongest!r} turns {bar.ceiling:.0%}" if bar.strongest else "none turns >= 50 %"
        lines.append(f"learner bar  {bar.words:,} ordinary words scanned; strongest {strongest}")
        lines.append(
            f"  words in no clean text need {bar.min_insertion_rate_unseen:.0%} "
            f"({bar.margin:.0%} above the strongest)"
            + (f"; every candidate needs {bar.min_insertion_rate:.0%}" if bar.min_insertion_rate else "")
        )
    return lines
