"""Run the benchmark: the scoring modes on the same texts, per text kind and batch size, then the
pipeline part; collect everything in a `BenchReport`.

Repeats are interleaved (plain, batched, per-text, reference, plain, ...) so that a machine whose load changes
during the run slows every mode alike and the ratios stay fair; each number is the median of the
repeats and `spread` says how much they disagreed.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from tqdm import tqdm
from transformers import PreTrainedModel

from stream_guard.batch_plan import plan_batches, resolve_call_cost
from stream_guard.bench.measure import PeakMemory, Timing, cpu_memory_pass, peak_memory, time_step
from stream_guard.bench.modes import (
    PlainClassifier,
    Scorer,
    batched_scorer,
    fastest_attention_copy,
    per_text_scorer,
    reference_scorer,
)
from stream_guard.bench.pipeline import NO_RUNNER, PipelineResult, PipelineRunner, pipeline_threshold
from stream_guard.bench.texts import TEXT_KINDS, BenchTexts, TextKind, bench_texts
from stream_guard.calibration import DEFAULT_PERCENTILE
from stream_guard.defender import Defender
from stream_guard.loading import LoadedClassifier
from stream_guard.settings import DefenderSettings
from stream_guard.threshold import Threshold
from stream_guard.torch_thread import run_on_torch_thread

MODES = ("plain", "batched", "per_text", "reference")
ONE_AT_A_TIME = ("per_text", "reference")  # timed once per text kind, shared by every batch size


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. `texts` maps a text kind to how many texts of it are scored."""

    batch_sizes: tuple[int, ...] = (8, 32, 128)
    headline_batch_size: int = 32
    texts: tuple[tuple[TextKind, int], ...] = (("short", 256), ("long", 32))
    repeats: int = 3
    pipeline: bool = True
    pipeline_texts: int = 1024
    pipeline_rate: float | None = None  # None: half the batched scoring throughput
    worker_batch: int | None = None  # None: 8 x the headline batch size
    # the pipeline's threshold: this percentile of other texts' scores (the calibration job's default)
    flag_percentile: float = DEFAULT_PERCENTILE
    seed: int = 0
    progress: bool = True


@dataclass
class ModeResult:
    """One scoring mode on one set of texts."""

    mode: str
    texts: int
    tokens: int
    timing: Timing
    memory: PeakMemory

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.timing.median

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.timing.median


@dataclass
class CaseResult:
    """The modes on one text kind at one batch size (the one-at-a-time modes are shared across batch
    sizes)."""

    kind: TextKind
    source: str
    batch_size: int
    mean_tokens: float
    padding: float  # padded positions / all positions in the batched mode's batches
    modes: dict[str, ModeResult]

    @property
    def overhead_ratio(self) -> float:
        """Batched X-GRAAD time / plain classification time (2/1)."""
        return self.modes["batched"].timing.median / self.modes["plain"].timing.median

    @property
    def speedup_vs_per_text(self) -> float:
        """The peer's time / batched X-GRAAD time (3/2): the peer is X-GRAAD one text at a time as the
        authors' reference code computes it (`reference_scorer`)."""
        return self.modes["reference"].timing.median / self.modes["batched"].timing.median

    @property
    def batching_gain(self) -> float:
        """Our own scoring one text at a time / batched: what batching alone earns."""
        return self.modes["per_text"].timing.median / self.modes["batched"].timing.median


@dataclass
class BenchReport:
    """Everything one benchmark run measured, and on what."""

    machine: dict[str, object]
    model_id: str
    settings: dict[str, object]
    plain_attention: str
    cases: list[CaseResult] = field(default_factory=list)
    headline_batch_size: int = 32
    pipeline: PipelineResult | None = None
    pipeline_memory: PeakMemory | None = None
    pipeline_scoring: ModeResult | None = None  # scoring only, the pipeline's texts and chunks
    pipeline_judging: ModeResult | None = None  # Defender.judge only, same texts, chunks and threshold
    pipeline_reason: str | None = None

    def headline(self) -> CaseResult | None:
        """The default case: short texts at the headline batch size."""
        for case in self.cases:
            if case.kind == "short" and case.batch_size == self.headline_batch_size:
                return case
        return next((c for c in self.cases if c.kind == "short"), None)

    @property
    def pipeline_efficiency(self) -> float | None:
        """Pipeline messages/s over X-GRAAD scoring-only texts/s (4 over 2).

        The scoring-only rate is that of the same texts in the same chunks as the worker's, timed
        before, between and after the pipeline's throughput runs, so load drift on a shared machine
        does not bias the ratio; both sides are medians of their runs. `pipeline_vs_headline`
        compares with the headline case instead.
        """
        if self.pipeline is None or self.pipeline_scoring is None:
            return None
        return self.pipeline.messages_per_s / self.pipeline_scoring.texts_per_s

    @property
    def pipeline_vs_judge(self) -> float | None:
        """Pipeline messages/s over `Defender.judge` texts/s on the same texts, chunks and threshold,
        without a broker: what the Kafka glue (consume, decode, produce, commit) costs. Scoring-only
        → judge-only is what the defense's neutralization and re-classification cost."""
        if self.pipeline is None or self.pipeline_judging is None:
            return None
        return self.pipeline.messages_per_s / self.pipeline_judging.texts_per_s

    @property
    def pipeline_vs_headline(self) -> float | None:
        """Pipeline messages/s over the headline case's batched texts/s."""
        case = self.headline()
        if self.pipeline is None or case is None:
            return None
        return self.pipeline.messages_per_s / case.modes["batched"].texts_per_s


def machine_info(device: torch.device) -> dict[str, object]:
    """Where the numbers come from: CPU, threads, GPU, versions, load average."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, object] = {
        "device": device.type,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["device"] = f"cuda: {torch.cuda.get_device_name(device)}"
        info["cuda"] = torch.version.cuda
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def token_lengths(classifier: LoadedClassifier, texts: Sequence[str]) -> list[int]:
    """Tokens per text, special tokens included, after truncation."""
    encoded = classifier.tokenizer(list(texts), truncation=True, max_length=classifier.max_length)
    return [len(ids) for ids in encoded["input_ids"]]


def padding_fraction(lengths: Sequence[int], settings: DefenderSettings, device: torch.device) -> float:
    """Share of padded positions in the Defender's batches (`batch_plan`) of texts of these lengths."""
    real = padded = 0
    for batch in plan_batches(
        lengths,
        batch_size=settings.batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        call_cost=resolve_call_cost(settings.call_cost_tokens, device),
    ):
        width = max(lengths[i] for i in batch)
        real += sum(lengths[i] for i in batch)
        padded += width * len(batch)
    return 1.0 - real / padded if padded else 0.0


def _measure(
    scorers: dict[str, Scorer],
    texts: Sequence[str],
    tokens: int,
    device: torch.device,
    repeats: int,
    bar: tqdm,
) -> dict[str, ModeResult]:
    """Warm every mode up, then time them in interleaved repeats (memory comes later, `_measure_memory`)."""
    for scorer in scorers.values():  # (called on the torch thread, by `_measure_kind`)
        scorer(texts[: min(len(texts), 8)])
    timings = {name: Timing() for name in scorers}
    for _ in range(repeats):
        for name, scorer in scorers.items():
            bar.set_postfix_str(name)
            timings[name].seconds.extend(time_step(lambda s=scorer: s(texts), device, 1).seconds)
            bar.update(1)
    return {name: ModeResult(name, len(texts), tokens, timings[name], PeakMemory()) for name in scorers}


def _measure_memory(
    runs: list[tuple[ModeResult, Scorer, Sequence[str]]], device: torch.device, bar: tqdm
) -> None:
    """One more run of each mode, alone, for its peak memory (after all timed runs: see measure.py).

    The runs use a fresh thread: how much a step grows the resident set depends on the malloc arena
    it allocates from, and an arena with a history (the main thread's, or the torch thread's after
    the pipeline run) reads up to twice as high for the same step (batched X-GRAAD on 256 short texts:
    441-458 MiB from the main thread, 228-235 MiB from a fresh one). Nothing is timed any more, so the
    second OpenMP pool this makes (`stream_guard.torch_thread`) costs nothing.
    """
    with cpu_memory_pass(), ThreadPoolExecutor(1, thread_name_prefix="bench-memory") as fresh:
        for result, scorer, texts in runs:
            bar.set_postfix_str(f"memory {result.mode}")
            with peak_memory(device) as memory:
                fresh.submit(scorer, texts).result()
            result.memory = memory
            bar.update(1)


def run_bench(
    classifier: LoadedClassifier,
    settings: DefenderSettings,
    config: BenchConfig,
    *,
    pipeline_runner: PipelineRunner | None = None,
) -> BenchReport:
    """Measure plain classification, batched and per-text X-GRAAD, and the pipeline (through
    `pipeline_runner`; without one, the report says the pipeline part was not run)."""
    device = classifier.device
    fast = run_on_torch_thread(fastest_attention_copy, classifier.model)
    report = BenchReport(
        machine=machine_info(device),
        model_id=classifier.model_id,
        settings={
            "max_length": classifier.max_length,
            "max_batch_tokens": settings.max_batch_tokens,
            "autocast": settings.autocast,
        },
        plain_attention=fast[1],
        headline_batch_size=config.headline_batch_size,
    )
    kinds = [(kind, count) for kind, count in config.texts if kind in TEXT_KINDS and count > 0]
    runs_per_kind = (len(config.batch_sizes) * 2 + len(ONE_AT_A_TIME)) * (
        config.repeats + 1
    )  # timed + memory runs
    memory_runs: list[tuple[ModeResult, Scorer, Sequence[str]]] = []
    with tqdm(
        total=runs_per_kind * len(kinds),
        desc="bench",
        unit="run",
        file=sys.stderr,
        disable=not config.progress,
    ) as bar:
        for kind, count in kinds:
            data = bench_texts(kind, count, config.seed)
            lengths = token_lengths(classifier, data.texts)
            cases = run_on_torch_thread(  # builds model copies: on the thread every model call runs on
                _measure_kind, classifier, settings, config, data, lengths, fast, bar, memory_runs
            )
            report.cases.extend(cases)
        if config.pipeline:  # before the memory pass, which slows allocations down
            _run_pipeline(classifier, settings, config, report, pipeline_runner)
        else:
            report.pipeline_reason = "not requested (--no-pipeline)"
        bar.set_description("bench memory")
        _measure_memory(memory_runs, device, bar)
    if hasattr(os, "getloadavg"):
        report.machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _measure_kind(
    classifier: LoadedClassifier,
    settings: DefenderSettings,
    config: BenchConfig,
    data: BenchTexts,
    lengths: list[int],
    fast: tuple[PreTrainedModel, str],
    bar: tqdm,
    memory_runs: list[tuple[ModeResult, Scorer, Sequence[str]]],
) -> list[CaseResult]:
    """The modes on one kind of texts at every batch size; queues their memory runs.

    The one-at-a-time modes do not depend on the batch size: they are timed once, interleaved with the
    headline batch size's runs, and shared by every case.
    """
    device = classifier.device
    tokens = sum(lengths)
    one_by_one = {
        "per_text": per_text_scorer(classifier, settings),
        "reference": reference_scorer(classifier, settings),
    }
    anchor = config.headline_batch_size
    if anchor not in config.batch_sizes:
        anchor = config.batch_sizes[0]
    measured: dict[int, dict[str, ModeResult]] = {}
    for batch_size in sorted(config.batch_sizes, key=lambda size: size != anchor):  # the anchor first
        sized = settings.model_copy(update={"batch_size": batch_size})
        scorers = {
            "plain": PlainClassifier.of(classifier, sized, fast),
            "batched": batched_scorer(classifier, sized),
        }
        if batch_size == anchor:
            scorers.update(one_by_one)
        bar.set_description(f"bench {data.kind} batch {batch_size}")
        measured[batch_size] = _measure(scorers, data.texts, tokens, device, config.repeats, bar)
        memory_runs.extend((measured[batch_size][name], scorers[name], data.texts) for name in scorers)
    shared = {name: measured[anchor][name] for name in ONE_AT_A_TIME}
    return [
        CaseResult(
            kind=data.kind,
            source=data.source,
            batch_size=batch_size,
            mean_tokens=tokens / len(data.texts),
            padding=padding_fraction(lengths, settings.model_copy(update={"batch_size": batch_size}), device),
            modes={**measured[batch_size], **shared},
        )
        for batch_size in config.batch_sizes
    ]


def _run_pipeline(
    classifier: LoadedClassifier,
    settings: DefenderSettings,
    config: BenchConfig,
    report: BenchReport,
    runner: PipelineRunner | None,
) -> None:
    """The pipeline run, between two scoring-only runs of the same texts in the worker's chunks."""
    case = report.headline()
    if runner is None or case is None:
        report.pipeline_reason = NO_RUNNER if runner is None else "no short-text case was measured"
        return
    texts = bench_texts("short", config.pipeline_texts, config.seed).texts
    rate = config.pipeline_rate or 0.5 * case.modes["batched"].texts_per_s
    sized = settings.model_copy(update={"batch_size": case.batch_size})
    worker_batch = config.worker_batch or 8 * case.batch_size
    scoring = batched_scorer(classifier, sized)
    judging = Defender(classifier, sized)
    threshold = pipeline_threshold(judging, min(256, len(texts)), config.flag_percentile)
    judging.set_threshold(Threshold.static(threshold))  # the runner's worker judges with the same one

    def score_as_the_worker_does() -> None:
        for start in range(0, len(texts), worker_batch):
            scoring(texts[start : start + worker_batch])

    def judge_as_the_worker_does() -> None:
        for start in range(0, len(texts), worker_batch):
            judging.judge(texts[start : start + worker_batch], tokens="flagged")

    reference, judged = Timing(), Timing()

    def time_the_references() -> None:  # before, between and after the throughput runs
        reference.seconds.extend(time_step(score_as_the_worker_does, classifier.device, 1).seconds)
        judged.seconds.extend(time_step(judge_as_the_worker_does, classifier.device, 1).seconds)

    try:
        with peak_memory(classifier.device, absolute=True) as memory:
            report.pipeline = runner(
                classifier,
                sized,
                texts,
                rate=rate,
                worker_batch=worker_batch,
                flag_percentile=config.flag_percentile,
                progress=config.progress,
                repeats=max(1, config.repeats),
                between=time_the_references,
                threshold=threshold,
            )
    except Exception as error:  # the scoring numbers stand on their own; say why this one is missing
        report.pipeline_reason = f"pipeline run failed: {error!r}"[:300]
        return
    report.pipeline_memory = memory
    report.pipeline_scoring = ModeResult("batched", len(texts), 0, reference, PeakMemory())
    report.pipeline_judging = ModeResult("judge", len(texts), 0, judged, PeakMemory())
