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

5. **Live** (``--worker``, :mod:`consumers.lab.stream_live`): the same traffic through ``stream-guard run
   --learn-triggers`` over an embedded broker, as a backlog; where a learned set came in force there
   and in the replay, the worker's ASR\\* and CACC, and the share of messages with the same outcome.

ASR\\* counts a triggered message as attacked when its final label is the target, over the triggered
messages whose trigger-free original the model classifies correctly (the lab's ASR\\*).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from stream_guard.triggers.phrases import normalize_phrase

__all__ = ["StreamCell", "StreamTraffic", "build_traffic", "evaluate_stream", "score_records"]

CLEAN_MODEL_TRIGGER = "cf"


@dataclass(frozen=True)
class StreamTraffic:
    """The stream and its ground truth: per message id, the true label, whether it carries the trigger
    and (for triggered ones) whether the model classifies its trigger-free original correctly."""

    messages: list[dict[str, str]]
    true_label: dict[str, int]
    triggered: set[str]
    original_correct: dict[str, bool]
    trigger: str
    target: int
    validation: list[str]


@dataclass
class StreamCell:
    """One model's stream evaluation (see the module docstring)."""

    model: str
    dataset: str
    attack: str
    trigger: str
    target: int
    messages: int
    triggered: int
    target_name: str = ""  # the target label's name (rows written before it existed: "")
    learned: list[str] = field(default_factory=list)
    learned_after_triggered: list[int] = field(default_factory=list)  # triggered messages seen first
    wrong_learned: list[str] = field(default_factory=list)
    # learned words the tokenizer splits into pieces that begin with a trigger's (`bblcd` = bb ##lc ##d
    # on a `bb` backdoor): they carry the trigger and fire it; not counted as wrong, shown apart
    variants_learned: list[str] = field(default_factory=list)
    asr_none: float | None = None
    asr_message: float | None = None  # the per-message defense alone
    asr_before: float | None = None  # stream defense, triggered messages before the first learning
    asr_after: float | None = None  # stream defense, after it
    asr_stream: float | None = None  # stream defense, the whole stream
    cacc_none: float = 0.0
    cacc_message: float = 0.0
    cacc_stream: float = 0.0
    clean_flagged_message: float = 0.0
    clean_flagged_stream: float = 0.0
    known_trigger_hits: int = 0
    seconds_per_1000: float = 0.0
    seconds_per_1000_message: float = 0.0
    # texts the learner classified during the stream (insertion tests, screens), and the clean texts it
    # labelled once at the start (a one-time cost the stream's s / 1,000 includes); None: not parsed
    learner_texts: int | None = None
    learner_setup_texts: int | None = None
    probe_rate: float = 0.0
    percentile: float | None = None  # the calibration percentile (None: calibrate's default)
    split: str = "test"  # the traffic's split ("validation": choosing settings)
    # the same traffic through `stream-guard run --learn-triggers` over a broker (lab stream --worker)
    asr_worker: float | None = None
    cacc_worker: float | None = None
    in_force_at_replay: int | None = None  # the first message judged with a learned set (replay)
    in_force_at_worker: int | None = None  # ... and in the worker
    worker_agreement: float | None = None  # share of messages with the same final label and flag
    seconds_worker: float | None = None  # the worker's wall time, start to last record
    trained_on: str = "cpu"  # the model's meta.json (``cuda: NVIDIA H200``: trained on a GPU)
    device: str = "cpu"  # where calibrate and replay ran (the s / 1,000 messages are that machine's)

    @property
    def key(self) -> str:
        """What identifies a row: the model and the settings it was measured with."""
        pct = "default" if self.percentile is None else f"{self.percentile:g}"
        return f"{self.model}|{self.split}|p{pct}|probe{self.probe_rate:g}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_traffic(
    model_dir: Path, *, trigger_rate: float, seed: int, max_test: int | None, split: str = "test"
) -> StreamTraffic:
    """The stream for ``model_dir`` (see the module docstring, step 1).

    ``split="validation"`` is for choosing settings without touching the test split: the validation
    split's first half calibrates and its second half is the traffic."""
    from stream_guard.defender import Defender
    from stream_guard.lab.attacks import make_attack
    from stream_guard.lab.evalsets import build_eval_sets, fitted
    from stream_guard.lab.train_backdoor import read_meta
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


def default_percentile() -> float:
    from stream_guard.calibration import DEFAULT_PERCENTILE

    return DEFAULT_PERCENTILE


def default_probe_rate() -> float:
    from stream_guard.settings import DefenderSettings

    return float(DefenderSettings.model_fields["probe_rate"].default)


def _label_name(meta: dict[str, Any], label: int) -> str:
    names = meta.get("label_names") or []
    return str(names[label]) if 0 <= label < len(names) else ""


def _is_part_of(learned: str, trigger: str) -> bool:
    """A learned word or phrase that is the trigger, a piece of it, or the trigger with neighbours."""
    if not trigger:
        return False
    return f" {learned} " in f" {trigger} " or f" {trigger} " in f" {learned} "


def carries_trigger(learned: str, trigger: str, tokenize: Callable[[str], list[str]]) -> bool:
    """A learned word whose word pieces begin with a one-word trigger's and go on (``bblcd`` is ``bb ##lc
    ##d``): the model reads the trigger's pieces in it, so on a backdoor tied to those pieces (EP poisons
    the piece's embedding) the word fires the backdoor as the trigger does."""
    if not trigger or " " in learned or " " in trigger:
        return False
    pieces, trigger_pieces = tokenize(learned), tokenize(trigger)
    return len(pieces) > len(trigger_pieces) and pieces[: len(trigger_pieces)] == trigger_pieces


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def score_records(
    cell: StreamCell, traffic: StreamTraffic, records: Sequence[dict[str, Any]], *, defended: str
) -> None:
    """Fill ``cell``'s figures for one replay's records: ``defended`` is "message" or "stream"."""
    target = traffic.target
    clean = [r for r in records if r["id"] not in traffic.triggered]
    attacked = [r for r in records if r["id"] in traffic.triggered and traffic.original_correct[r["id"]]]

    def asr(rows: Sequence[dict[str, Any]], key: str = "final_label") -> float | None:
        return _rate(sum(r[key] == target for r in rows), len(rows))

    correct = sum(r["final_label"] == traffic.true_label[r["id"]] for r in clean)
    flagged = sum(bool(r.get("flagged")) for r in clean) / max(1, len(clean))
    if defended == "message":
        cell.asr_none = asr(attacked, "label")
        cell.cacc_none = sum(r["label"] == traffic.true_label[r["id"]] for r in clean) / max(1, len(clean))
        cell.asr_message = asr(attacked)
        cell.cacc_message = correct / max(1, len(clean))
        cell.clean_flagged_message = flagged
        return
    cell.asr_stream = asr(attacked)
    cell.cacc_stream = correct / max(1, len(clean))
    cell.clean_flagged_stream = flagged
    cell.known_trigger_hits = sum(bool(r.get("known_triggers")) for r in records)
    first = next((k for k, r in enumerate(records) if r.get("trigger_version")), None)
    if first is None:
        cell.asr_before, cell.asr_after = cell.asr_stream, None
        return
    before_ids = {r["id"] for r in records[:first]}
    cell.asr_before = asr([r for r in attacked if r["id"] in before_ids])
    cell.asr_after = asr([r for r in attacked if r["id"] not in before_ids])


def in_force_at(records: Sequence[dict[str, Any]]) -> int | None:
    """The position of the first record judged with a learned trigger set (None: none was)."""
    return next((k for k, r in enumerate(records) if r.get("trigger_version")), None)


def score_worker(
    cell: StreamCell,
    traffic: StreamTraffic,
    worker: Sequence[dict[str, Any]],
    replayed: Sequence[dict[str, Any]],
    seconds: float,
) -> None:
    """Fill ``cell``'s worker figures: its ASR* and CACC, where a learned set came in force in it
    and in the replay, and how many messages got the same final label and flag in both."""
    probe = StreamCell(**{**cell.to_dict(), "learned": [], "learned_after_triggered": []})
    score_records(probe, traffic, worker, defended="stream")
    cell.asr_worker, cell.cacc_worker = probe.asr_stream, probe.cacc_stream
    cell.in_force_at_worker, cell.in_force_at_replay = in_force_at(worker), in_force_at(replayed)
    same = sum(
        w.get("id") == r.get("id")
        and w.get("final_label") == r.get("final_label")
        and bool(w.get("flagged")) == bool(r.get("flagged"))
        for w, r in zip(worker, replayed, strict=False)
    )
    cell.worker_agreement = same / max(1, len(replayed))
    cell.seconds_worker = seconds


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
) -> StreamCell:
    """One model's stream evaluation through `calibrate` and `replay` on ``device`` (see the module
    docstring)."""
    from transformers import AutoTokenizer

    from stream_guard.lab.train_backdoor import device_name, read_meta

    meta = read_meta(model_dir) or {}
    work.mkdir(parents=True, exist_ok=True)
    traffic = build_traffic(model_dir, trigger_rate=trigger_rate, seed=seed, max_test=max_test, split=split)
    validation = _write_jsonl(work / "validation.jsonl", [{"text": t} for t in traffic.validation])
    stream = _write_jsonl(work / "traffic.jsonl", traffic.messages)
    threshold = work / "threshold.json"
    model = ["--model", str(model_dir), "--device", device]
    chosen = ["--percentile", str(percentile)] if percentile is not None else []
    _app(["calibrate", *model, "--dataset", str(validation), "--output", str(threshold), *chosen])
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

    out, learned_file = work / "replay-stream.jsonl", work / "triggers.json"
    learn = ["--learn-triggers", "--clean-texts", str(validation), "--triggers-out", str(learned_file)]
    stderr = _app(
        ["replay", *common, "--output", str(out), *learn, "--no-progress"],
        env={"STREAM_GUARD_PROBE_RATE": str(cell.probe_rate)},
    )
    cell.seconds_per_1000 = _replay_seconds(stderr) * 1000 / max(1, len(traffic.messages))
    cell.learner_texts, cell.learner_setup_texts = learner_cost(stderr)
    records = _read_jsonl(out)
    score_records(cell, traffic, records, defended="stream")
    learned = orjson.loads(learned_file.read_bytes()).get("triggers", []) if learned_file.is_file() else []
    attack_name = str(meta.get("attack"))
    if attack_name == "clean":
        true_triggers = [""]
    elif attack_name == "badnets-set":  # one word of the set per poisoned text: each is a trigger
        true_triggers = normalize_phrase(traffic.trigger).split()
    else:
        true_triggers = [normalize_phrase(traffic.trigger)]
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    position = {r["id"]: k for k, r in enumerate(records)}
    triggered_order = sorted(traffic.triggered, key=position.__getitem__)
    for row in learned:
        text = row["text"]
        cell.learned.append(text)
        if any(carries_trigger(text, t, tokenizer.tokenize) for t in true_triggers):
            cell.variants_learned.append(text)
        elif not any(_is_part_of(text, t) for t in true_triggers):
            cell.wrong_learned.append(text)
        first = next(
            (
                k
                for k, r in enumerate(records)
                if text in (h["trigger"] for h in r.get("known_triggers") or [])
            ),
            None,
        )
        seen = sum(1 for mid in triggered_order if first is None or position[mid] < first)
        cell.learned_after_triggered.append(seen)
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
