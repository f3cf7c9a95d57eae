"""`stream-guard lab stream`: the stream-level defense measured through the product's own commands.

For a lab model (its ``meta.json`` names dataset, attack, trigger, target, split seed):

1. **Traffic**: its test split in a seeded random order; a share of the messages (default 10 %), drawn
   from the texts whose label is not the target, carry the attack's trigger (the lab's own poisoning:
   a rare word, a split-piece word, a phrase…). A clean model gets the BadNets word ``cf`` in that
   share: nothing must be learned from it.
2. **Calibration**: ``stream-guard calibrate`` on the model's clean validation split (never test data).
3. **Replay**: ``stream-guard replay --threshold-file … --learn-triggers --clean-texts <validation>``
   (the learner's insertion test uses the same clean texts) → records; and a plain
   ``stream-guard replay --threshold-file …`` for the per-message defense alone.
4. **Scores** from the records and the ground truth kept apart: when each trigger was learned (in
   triggered messages), ASR\\* before / after learning and over the whole stream, CACC without the
   defense, with the per-message defense and with the stream defense, clean flag rate, words learned
   that are not the trigger, wall time per 1,000 messages.

**Bar** (``--scan-bar``): ``stream-guard calibrate --scan-bar`` also scans the words
(``--scan-bar-words``: a seeded sample of them) of a seeded sample of the model's clean training texts
(never the traffic) and writes the learner's bar into the threshold file, which the learning replay
applies (``learn_bar``: the bar for words in no clean text, and the rule's own bar when ordinary words
reach above it); the row records the bar and the strongest word.

5. **Live** (``--worker``, :mod:`consumers.lab.stream_live`): the same traffic through ``stream-guard run
   --learn-triggers`` over an embedded broker, as a backlog; where a learned set came in force there
   and in the replay, the worker's ASR\\* and CACC, and the share of messages with the same outcome.

ASR\\* counts a triggered message as attacked when its final label is the target, over the triggered
messages whose trigger-free original the model classifies correctly (the lab's ASR\\*).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from consumers.lab.stream_cell import StreamCell, StreamTraffic
from consumers.lab.stream_scoring import score_learned, score_records, score_worker

__all__ = ["build_traffic", "clean_sample", "evaluate_stream", "learner_cost"]

CLEAN_MODEL_TRIGGER = "cf"


def build_traffic(
    model_dir: Path, *, trigger_rate: float, seed: int, max_test: int | None, split: str = "test"
) -> StreamTraffic:
    """The stream for ``model_dir`` (see the module docstring, step 1).

    ``split="validation"`` is for choosing settings without touching the test split: the validation
    split's first half calibrates and its second half is the traffic."""
    from stream_guard.defender import Defender
    from stream_guard.lab.attacks import make_attack
    from stream_guard.lab.evalsets import build_eval_sets, fitted
    from stream_guard.lab.model_specs import read_meta
    from stream_guard.loading import load_classifier

    meta = read_meta(model_dir)
    if meta is None:
        raise ValueError(f"{model_dir}: no meta.json (train it with `stream-guard lab train`)")
    classifier = load_classifier(model_dir, device="cpu")
    # choosing on validation: 1,000 validation texts, half to calibrate on and half as traffic
    max_val = 1000 if split == "validation" else 500
    sets = build_eval_sets(
        meta, classifier.tokenizer, max_val=max_val, max_test=max_test, max_poisoned=None, model_dir=model_dir
    )
    target = sets.target
    attack = sets.attack
    test, calibration = sets.test, sets.validation
    if split == "validation":  # two random halves (the split's rows may be grouped by label)
        rows = list(range(len(sets.validation)))
        random.Random(seed + 1).shuffle(rows)
        half = len(rows) // 2
        calibration = sets.validation.subset(sorted(rows[:half]))
        test = sets.validation.subset(sorted(rows[half:]))
    elif split != "test":
        raise ValueError(f"split must be test or validation, got {split!r}")
    if attack.is_clean or split == "validation":  # poison the traffic's own texts
        if attack.is_clean:  # a model without a backdoor: the word still comes, nothing must be learned
            attack = make_attack("badnets", CLEAN_MODEL_TRIGGER)
        poisoned = attack.poison_test(test, target_label=target, seed=int(meta["seed"]))
    else:
        assert sets.poisoned is not None
        poisoned = sets.poisoned
    rng = random.Random(seed)
    order = list(range(len(test)))
    rng.shuffle(order)
    share = min(len(poisoned), round(trigger_rate * len(test)))
    chosen = sorted(rng.sample(range(len(poisoned)), share))
    replaced = {poisoned.source_indices[j]: j for j in chosen}
    defender = Defender(classifier)
    originals = [poisoned.original_texts[j] for j in chosen]
    predicted = defender.predict_proba(originals).argmax(axis=1) if originals else []
    correct = {
        poisoned.source_indices[j]: bool(p == poisoned.original_labels[j])
        for j, p in zip(chosen, predicted, strict=True)
    }
    messages, truth, triggered, original_correct = [], {}, set(), {}
    for position, i in enumerate(order):
        mid = f"s{position:05d}"
        if i in replaced:
            text = poisoned.dataset.texts[replaced[i]]
            triggered.add(mid)
            original_correct[mid] = correct[i]
        else:
            text = test.texts[i]
        messages.append({"id": mid, "text": text})
        truth[mid] = int(test.labels[i])
    validation = fitted(calibration, classifier.tokenizer, sets.max_length).texts
    trigger = attack.trigger  # for a clean model: the word it gets anyway
    return StreamTraffic(messages, truth, triggered, original_correct, trigger, target, list(validation))


def clean_sample(model_dir: Path, texts: int, seed: int = 0) -> list[str]:
    """A seeded sample of ``texts`` of the model's clean training split: traffic without a trigger, for
    ``calibrate --scan-bar`` (the lab's stand-in for an operator's sample of clean traffic)."""
    from stream_guard.lab.evalsets import load_splits
    from stream_guard.lab.model_specs import read_meta

    meta = read_meta(model_dir) or {}
    train = load_splits(
        str(meta.get("dataset")),
        split_seed=int(meta.get("split_seed", 0)),
        max_train=None,
        max_val=0,
        max_test=0,
    ).train.texts
    rows = sorted(random.Random(seed).sample(range(len(train)), min(texts, len(train))))
    return [train[i] for i in rows]


def default_percentile() -> float:
    from stream_guard.calibration import DEFAULT_PERCENTILE

    return DEFAULT_PERCENTILE


def default_probe_rate() -> float:
    from stream_guard.settings import DefenderSettings

    return float(DefenderSettings.model_fields["probe_rate"].default)


def _label_name(meta: dict[str, Any], label: int) -> str:
    names = meta.get("label_names") or []
    return str(names[label]) if 0 <= label < len(names) else ""


def _app(args: Sequence[str], env: dict[str, str] | None = None) -> str:
    """Run a `stream-guard` command in a process of its own, exactly as a user would; its stderr."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "consumers.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"stream-guard {args[0]} exited {result.returncode}: {tail[0]}")
    return result.stderr


def _replay_seconds(stderr: str) -> float:
    """The replay's own time, from its summary line ("replayed N messages in X s"): model loading and
    process start-up excluded."""
    found = re.search(r"replayed \d+ messages in ([0-9.]+) s", stderr)
    if found is None:
        raise RuntimeError("replay printed no summary line")
    return float(found.group(1))


def learner_cost(stderr: str) -> tuple[int | None, int | None]:
    """From the learning replay's "learner cost" line: texts classified by the learner's tests, and the
    clean texts it labelled once (0 when it never tested); (None, None) when the line is missing."""
    found = re.search(
        r"learner\s+cost:.*?(\d+)\s+texts\s+classified(?:\s+\(\+(\d+)\s+clean\s+texts)?", stderr, re.S
    )
    if found is None:
        return None, None
    return int(found.group(1)), int(found.group(2) or 0)


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def evaluate_stream(
    model_dir: Path,
    work: Path,
    *,
    trigger_rate: float = 0.1,
    probe_rate: float | None = None,
    seed: int = 0,
    max_test: int | None = None,
    batch_size: int = 64,
    percentile: float | None = None,
    split: str = "test",
    worker: bool = False,
    device: str = "cpu",
    scan_bar_texts: int = 0,
    scan_bar_words: int | None = None,
) -> StreamCell:
    """One model's stream evaluation through `calibrate` and `replay` on ``device`` (see the module
    docstring)."""
    from transformers import AutoTokenizer

    from stream_guard.lab.model_specs import device_name, read_meta, training_id

    meta = read_meta(model_dir) or {}
    work.mkdir(parents=True, exist_ok=True)
    traffic = build_traffic(model_dir, trigger_rate=trigger_rate, seed=seed, max_test=max_test, split=split)
    validation = _write_jsonl(work / "validation.jsonl", [{"text": t} for t in traffic.validation])
    stream = _write_jsonl(work / "traffic.jsonl", traffic.messages)
    threshold = work / "threshold.json"
    model = ["--model", str(model_dir), "--device", device]
    chosen = ["--percentile", str(percentile)] if percentile is not None else []
    if scan_bar_texts > 0:  # calibrate also measures the learner's bar, on clean traffic (training texts)
        sample = _write_jsonl(
            work / "bar-traffic.jsonl", [{"text": t} for t in clean_sample(model_dir, scan_bar_texts)]
        )
        chosen += ["--scan-bar", str(sample)]
        chosen += ["--scan-bar-words", str(scan_bar_words)] if scan_bar_words else []
    _app(["calibrate", *model, "--dataset", str(validation), "--output", str(threshold), *chosen])
    learn_bar = orjson.loads(threshold.read_bytes()).get("learn_bar")
    cell = StreamCell(
        model=model_dir.name,
        dataset=str(meta.get("dataset")),
        attack=str(meta.get("attack")),
        trigger=traffic.trigger,
        target=traffic.target,
        target_name=_label_name(meta, traffic.target),
        messages=len(traffic.messages),
        triggered=len(traffic.triggered),
        probe_rate=probe_rate if probe_rate is not None else default_probe_rate(),
        percentile=percentile if percentile is not None else default_percentile(),
        split=split,
        trained_on=str(meta.get("trained_on") or "cpu"),
        training=training_id(meta),
        device=device_name(device),
    )
    common = [
        *model,
        "--threshold-file",
        str(threshold),
        "--input",
        str(stream),
        "--batch-size",
        str(batch_size),
    ]
    base_out = work / "replay-message.jsonl"
    no_probes = {"STREAM_GUARD_PROBE_RATE": "0"}  # the per-message defense alone, and its cost
    seconds = _replay_seconds(
        _app(["replay", *common, "--output", str(base_out), "--no-progress"], env=no_probes)
    )
    cell.seconds_per_1000_message = seconds * 1000 / max(1, len(traffic.messages))
    score_records(cell, traffic, _read_jsonl(base_out), defended="message")

    learn_env = {"STREAM_GUARD_PROBE_RATE": str(cell.probe_rate)}
    if learn_bar is not None:  # replay applies it from the threshold file
        cell.scanned_bar = float(learn_bar["min_insertion_rate_unseen"])
        cell.scanned_ceiling = float(learn_bar["ceiling"])
        cell.scanned_strongest = learn_bar["strongest"] or ""
    out, learned_file = work / "replay-stream.jsonl", work / "triggers.json"
    learn = ["--learn-triggers", "--clean-texts", str(validation), "--triggers-out", str(learned_file)]
    stderr = _app(["replay", *common, "--output", str(out), *learn, "--no-progress"], env=learn_env)
    cell.seconds_per_1000 = _replay_seconds(stderr) * 1000 / max(1, len(traffic.messages))
    cell.learner_texts, cell.learner_setup_texts = learner_cost(stderr)
    records = _read_jsonl(out)
    score_records(cell, traffic, records, defended="stream")
    learned = orjson.loads(learned_file.read_bytes()).get("triggers", []) if learned_file.is_file() else []
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    score_learned(cell, traffic, records, learned, str(meta.get("attack")), tokenizer.tokenize)
    if worker:  # the same traffic through `stream-guard run --learn-triggers` over a broker
        from consumers.lab.stream_live import worker_records

        live, seconds = worker_records(
            model_dir,
            traffic.messages,
            validation,
            work,
            percentile=percentile,
            probe_rate=cell.probe_rate,
            device=device,
        )
        _write_jsonl(work / "worker.jsonl", live)
        score_worker(cell, traffic, live, records, seconds)
    return cell
