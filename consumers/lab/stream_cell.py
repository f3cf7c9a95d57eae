"""What a stream evaluation measures: the traffic with its ground truth, and one model's row of figures
(:mod:`consumers.lab.stream_eval` fills it, :mod:`consumers.lab.stream_report` writes it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["StreamCell", "StreamTraffic"]


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
    # the learner bar calibrate --scan-bar measured for this model and the learning ran with (None: default)
    scanned_bar: float | None = None
    scanned_strongest: str = ""  # ... and the strongest ordinary word of its scan, and its rate
    scanned_ceiling: float | None = None
    trained_on: str = "cpu"  # the model's meta.json (``cuda: NVIDIA H200``: trained on a GPU)
    training: str = ""  # model_specs.training_id of its meta.json ("": a row written before it existed)
    device: str = "cpu"  # where calibrate and replay ran (the s / 1,000 messages are that machine's)

    @property
    def key(self) -> str:
        """What identifies a row: the model and the settings it was measured with."""
        pct = "default" if self.percentile is None else f"{self.percentile:g}"
        bar = "" if self.scanned_bar is None else f"|bar{self.scanned_bar:g}"
        return f"{self.model}|{self.split}|p{pct}|probe{self.probe_rate:g}{bar}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
