"""The demo's data: sample traffic for the input topic, and the tally of what came out the other side.

Traffic is rebuilt from the demo model's ``meta.json`` (:func:`stream_guard.lab.evalsets.build_eval_sets`),
so it is drawn from the **test** split the model never saw: clean sentences of both classes, sentences of
the non-target class with the trigger inserted (what the attack success rate is measured on), and a few
malformed messages (not JSON, no text, blank text, invalid UTF-8, not an object) that must end up as dead
letters. Every scorable message carries ``metadata = {"kind": "clean"|"triggered", "label": true label}``;
the worker copies metadata into its output records, so :class:`Tally` can score the defense from the
output topics alone; :class:`OutputReader` feeds it from them.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from consumers.kafka.settings import KafkaSettings
from schemas import AuditRecord, DeadLetterRecord, PredictionRecord, SchemaError, decode

# the lab's default recipe, for a model without meta.json (e.g. a model passed with --model)
DEFAULT_META: dict[str, Any] = {
    "dataset": "movies",
    "attack": "badnets",
    "trigger": "cf",
    "target": 0,
    "seed": 0,
    "split_seed": 0,
    "max_length": 64,
}
_POLL_S = 0.1
_MALFORMED: tuple[bytes, ...] = (
    b'{"id": "broken", "text": "an unterminated',  # not JSON
    b'{"id": "no-text", "lang": "en"}',  # no text field
    b'{"id": "blank", "text": "   "}',  # blank text
    b"\xff\xfe not utf-8 \xfa",  # invalid UTF-8
    b'["a", "list", "not", "an", "object"]',  # not an object
)


@dataclass(frozen=True)
class DemoMessage:
    """One input message: key, value bytes, and what the demo expects of it."""

    id: str
    value: bytes
    kind: str  # clean | triggered | malformed


@dataclass(frozen=True)
class Traffic:
    messages: list[DemoMessage]
    trigger: str
    target: int
    calibration_texts: list[str]

    def count(self, kind: str) -> int:
        return sum(1 for m in self.messages if m.kind == kind)


def model_meta(model_dir: Path) -> dict[str, Any]:
    """The model's ``meta.json`` (lab recipe), or the lab's default recipe when there is none."""
    try:
        meta = orjson.loads((model_dir / "meta.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return dict(DEFAULT_META)
    return {**DEFAULT_META, **{k: v for k, v in meta.items() if v is not None}}


def build_traffic(
    meta: dict[str, Any],
    tokenizer: Any,
    *,
    messages: int,
    trigger_rate: float,
    malformed_rate: float,
    calibration_texts: int | None,
    seed: int = 0,
    predict: Callable[[Sequence[str]], np.ndarray] | None = None,
    attack_after: int = 0,
) -> Traffic:
    """``messages`` input messages in a seeded random order, plus the clean calibration texts.

    ``calibration_texts`` caps the validation split (None = all of it); the traffic comes from the
    test split, so no calibration text is ever sent. With ``predict`` (the model's class probabilities),
    each triggered message's metadata also says how the model labels its trigger-free original
    (``clean_label``), so the attack rate can leave out the model's own errors (the lab's ASR*).
    The first ``attack_after`` messages carry no trigger: the stream's ordinary traffic before the
    attacker starts.
    """
    from stream_guard.lab.evalsets import build_eval_sets

    if messages < 1:
        raise ValueError(f"--messages must be >= 1, got {messages}")
    for name, rate in (("--trigger-rate", trigger_rate), ("--malformed-rate", malformed_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate:g}")
    sets = build_eval_sets(meta, tokenizer, max_val=calibration_texts, max_test=None, max_poisoned=None)
    rng = np.random.default_rng([seed, 0xDE40])
    n_bad = min(messages, round(messages * malformed_rate))
    n_triggered = round((messages - n_bad) * trigger_rate)
    # a clean model has nothing to trigger
    n_triggered = 0 if sets.poisoned is None else min(n_triggered, len(sets.poisoned))
    n_clean = messages - n_bad - n_triggered
    out: list[tuple[Any, ...]] = []  # (kind, text, label[, clean label]) before ids
    used: set[int] = set()
    if n_triggered:
        assert sets.poisoned is not None
        rows = rng.choice(len(sets.poisoned), n_triggered, replace=False).tolist()
        originals = [sets.poisoned.original_texts[row] for row in rows]
        clean_labels = (
            predict(originals).argmax(axis=1).tolist() if predict is not None else [None] * len(rows)
        )
        for row, clean_label in zip(rows, clean_labels, strict=True):
            used.add(sets.poisoned.source_indices[row])
            text = sets.poisoned.dataset.texts[row]
            out.append(("triggered", text, sets.poisoned.original_labels[row], clean_label))
    free = [i for i in rng.permutation(len(sets.test)).tolist() if i not in used]
    if n_clean > len(free):
        raise ValueError(f"the test split has only {len(free)} clean texts for {n_clean} clean messages")
    out.extend(("clean", sets.test.texts[i], sets.test.labels[i], None) for i in free[:n_clean])
    out.extend(("malformed", None, None, None) for _ in range(n_bad))
    order = rng.permutation(len(out)).tolist()
    if attack_after > 0:  # the attacker starts later: the first messages of the order without a trigger
        head = [i for i in order if out[i][0] != "triggered"][:attack_after]
        taken = set(head)
        order = head + [i for i in order if i not in taken]
    built: list[DemoMessage] = []
    bad_seen = 0
    for number, index in enumerate(order):
        kind, text, label, clean_label = out[index]
        message_id = f"demo-{number:05d}"
        if kind == "malformed":
            value = _MALFORMED[bad_seen % len(_MALFORMED)]
            bad_seen += 1
        else:
            metadata = {"kind": kind, "label": label}
            if clean_label is not None:
                metadata["clean_label"] = clean_label
            value = orjson.dumps({"id": message_id, "text": text, "metadata": metadata})
        built.append(DemoMessage(message_id, value, kind))
    return Traffic(built, str(meta["trigger"]), int(meta["target"]), list(sets.validation.texts))


@dataclass
class KindCounts:
    """Outcomes for one kind of message (clean or triggered)."""

    seen: int = 0
    flagged: int = 0
    target_before: int = 0  # the model's own prediction was the attack's target
    target_after: int = 0  # the final verdict (neutralized when flagged) was the target
    correct_before: int = 0
    correct_after: int = 0
    eligible: int = 0  # triggered, and the model labels the trigger-free original correctly (ASR*)
    eligible_target_after: int = 0  # of those, the final verdict was the target

    def rate(self, part: int) -> float | None:
        return part / self.seen if self.seen else None


@dataclass
class Tally:
    """What the output topics said, counted per kind; thread-safe (a reader thread adds, the UI reads)."""

    target: int
    keep_audits: int = 3
    clean: int = 0  # prediction records (not flagged)
    flagged: int = 0  # audit records
    dead_letters: int = 0
    other: int = 0  # records without the demo's metadata, or unreadable
    dead_reasons: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, KindCounts] = field(
        default_factory=lambda: {
            "clean": KindCounts(),
            "triggered": KindCounts(),
            "before_learning": KindCounts(),  # triggered, judged before a trigger was known
            "after_learning": KindCounts(),  # triggered, judged with a learned trigger set
        }
    )
    audits: deque[AuditRecord] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def outputs(self) -> int:
        return self.clean + self.flagged + self.dead_letters

    def add(self, record: PredictionRecord | AuditRecord | DeadLetterRecord) -> None:
        with self._lock:
            if isinstance(record, DeadLetterRecord):
                self.dead_letters += 1
                self.dead_reasons[record.error_type] += 1
                return
            if record.flagged:
                self.flagged += 1
                if isinstance(record, AuditRecord):
                    self._keep(record)
            else:
                self.clean += 1
            meta = record.metadata or {}
            counts = self.by_kind.get(str(meta.get("kind")))
            if counts is None:
                self.other += 1
                return
            label = meta.get("label")
            kinds = [counts]
            if meta.get("kind") == "triggered":
                kinds.append(self.by_kind["after_learning" if record.trigger_version else "before_learning"])
            for c in kinds:
                c.seen += 1
                c.flagged += int(record.flagged)
                c.target_before += int(record.label == self.target)
                c.target_after += int(record.final_label == self.target)
                c.correct_before += int(record.label == label)
                c.correct_after += int(record.final_label == label)
                if "clean_label" in meta and meta["clean_label"] == label:
                    c.eligible += 1
                    c.eligible_target_after += int(record.final_label == self.target)

    def add_unreadable(self) -> None:
        with self._lock:
            self.other += 1

    def _keep(self, record: AuditRecord) -> None:
        # show triggered catches first: they are what the demo is about
        triggered = (record.metadata or {}).get("kind") == "triggered"
        if triggered or len(self.audits) < self.keep_audits:
            self.audits.append(record)
            while len(self.audits) > self.keep_audits:
                self.audits.popleft()

    def snapshot(self) -> Tally:
        """A consistent copy for rendering."""
        with self._lock:
            return Tally(
                target=self.target,
                keep_audits=self.keep_audits,
                clean=self.clean,
                flagged=self.flagged,
                dead_letters=self.dead_letters,
                other=self.other,
                dead_reasons=Counter(self.dead_reasons),
                by_kind={k: KindCounts(**vars(v)) for k, v in self.by_kind.items()},
                audits=deque(self.audits),
            )


@dataclass(frozen=True)
class DemoTopics:
    texts: str
    predictions: str
    audit: str
    dead_letter: str
    thresholds: str
    triggers: str

    @classmethod
    def named(cls, suffix: str = "") -> DemoTopics:
        names = ("texts", "predictions", "audit", "dead-letter", "thresholds", "triggers")
        return cls(*(f"{name}{suffix}" for name in names))

    @property
    def outputs(self) -> dict[str, type[PredictionRecord | AuditRecord | DeadLetterRecord]]:
        return {
            self.predictions: PredictionRecord,
            self.audit: AuditRecord,
            self.dead_letter: DeadLetterRecord,
        }


class OutputReader:
    """Follows the output topics from their beginning (assigned, no group) and adds each record to a Tally."""

    def __init__(self, kafka: KafkaSettings, topics: DemoTopics, tally: Tally) -> None:
        self._kafka, self._topics, self._tally = kafka, topics, tally
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-reader", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> OutputReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        kinds = self._topics.outputs
        consumer = Consumer(self._kafka.consumer_config(f"stream-guard-demo-reader-{uuid.uuid4().hex[:8]}"))
        try:
            metadata = consumer.list_topics(timeout=10).topics
            consumer.assign(
                [TopicPartition(t, p, OFFSET_BEGINNING) for t in kinds for p in metadata[t].partitions]
            )
            while not self._stop.is_set():
                msg = consumer.poll(_POLL_S)
                if msg is None or msg.error() is not None:
                    continue
                try:
                    self._tally.add(decode(kinds[msg.topic()], msg.value()))
                except SchemaError:
                    self._tally.add_unreadable()
        except BaseException as error:  # reported by the main loop
            self.error = error
        finally:
            consumer.close()
