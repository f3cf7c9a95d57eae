"""Which defenses the lab can evaluate: a name -> factory table, and what a factory is given.

A factory takes the :class:`DefenseContext` of one model (the loaded classifier, the backdoor's target
label, the evaluation options) and returns a fresh :class:`~stream_guard.lab.defenses.base.Defense`.
The built-in defenses are the lines of ``_FACTORIES``; adding one is a file with the defense and a
line there (or a :func:`register` call, e.g. from a test or a notebook). Rows are reported in the
order of :attr:`EvalOptions.defenses`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stream_guard.lab.defenses.base import Defense
from stream_guard.lab.defenses.none import NoDefense
from stream_guard.lab.defenses.onion import OnionConfig, OnionDefense
from stream_guard.lab.defenses.onion_lm import perplexity_scorer
from stream_guard.lab.defenses.rap import RapConfig, RapDefense
from stream_guard.lab.defenses.strip import StripConfig, StripDefense
from stream_guard.lab.defenses.xgraad import XGraadConfig, XGraadDefense
from stream_guard.lab.evalsets import EVAL_SPLITS
from stream_guard.lab.inference import ProbabilityFn, probability_fn
from stream_guard.loading import LoadedClassifier


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate: which registered defenses (in this order), on how many texts, and the built-in
    defenses' settings."""

    defenses: tuple[str, ...] = ("none", "xgraad-paper", "xgraad", "strip", "rap")
    max_val: int = 500
    max_test: int = 500
    max_poisoned: int = 500
    improved: XGraadConfig | None = None  # the "xgraad" defense; None = DefenderSettings defaults
    strip: StripConfig = field(default_factory=StripConfig)
    rap: RapConfig = field(default_factory=RapConfig)
    onion: OnionConfig = field(default_factory=OnionConfig)
    sweep: bool = True  # the threshold sweep of xgraad-paper (one extra pass that neutralizes all)
    split: str = "test"  # where the judged texts come from: test, or validation (to choose settings)
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        known = defense_names()
        unknown = [d for d in self.defenses if d not in known]
        if unknown:
            raise ValueError(f"unknown defense(s) {unknown}: choose from {', '.join(known)}")
        if self.split not in EVAL_SPLITS:
            raise ValueError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {self.split!r}")


@dataclass(frozen=True)
class DefenseContext:
    """What a factory may build a defense from: one model under evaluation and the options."""

    classifier: LoadedClassifier
    max_length: int  # the model's window (its meta.json), which every classification uses
    target: int  # the label the backdoor forces
    options: EvalOptions

    @property
    def progress(self) -> bool:
        return self.options.progress

    def probabilities(self) -> ProbabilityFn:
        """The model's plain class probabilities (no attribution)."""
        return probability_fn(self.classifier.model, self.classifier.tokenizer, max_length=self.max_length)


DefenseFactory = Callable[[DefenseContext], Defense]


def _xgraad(name: str, config: XGraadConfig, ctx: DefenseContext, *, figures: bool = False) -> Defense:
    config = replace(config, name=name)
    return XGraadDefense(
        ctx.classifier, config, figures=figures, sweep=ctx.options.sweep, progress=ctx.progress
    )


def _onion(ctx: DefenseContext) -> Defense:
    """ONION with its causal LM (the lab-onion extra, or $STREAM_GUARD_ONION_LM): loaded once per process."""
    cfg = ctx.options.onion
    scorer = perplexity_scorer(cfg.lm, device=ctx.options.device, batch_tokens=cfg.batch_tokens)
    return OnionDefense(ctx.probabilities(), scorer, cfg, progress=ctx.progress)


_FACTORIES: dict[str, DefenseFactory] = {
    "none": lambda ctx: NoDefense(ctx.probabilities()),
    "xgraad-paper": lambda ctx: _xgraad("xgraad-paper", XGraadConfig.paper(), ctx, figures=True),
    "xgraad": lambda ctx: _xgraad("xgraad", ctx.options.improved or XGraadConfig(), ctx),
    "strip": lambda ctx: StripDefense(
        ctx.probabilities(), ctx.target, ctx.options.strip, progress=ctx.progress
    ),
    "rap": lambda ctx: RapDefense(
        ctx.classifier.model,
        ctx.classifier.tokenizer,
        ctx.target,
        replace(ctx.options.rap, max_length=ctx.max_length),
        progress=ctx.progress,
    ),
    "onion": _onion,
}


def defense_names() -> tuple[str, ...]:
    """The registered defenses, built-in ones first."""
    return tuple(_FACTORIES)


def register(name: str, factory: DefenseFactory) -> None:
    """Make ``name`` evaluable; a name already registered is an error (unregister it first)."""
    if name in _FACTORIES:
        raise ValueError(f"defense {name!r} is already registered")
    _FACTORIES[name] = factory


def unregister(name: str) -> None:
    """Forget ``name`` (KeyError if it is not registered)."""
    del _FACTORIES[name]


def make_defense(name: str, ctx: DefenseContext) -> Defense:
    """A fresh defense ``name`` for the model in ``ctx``."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown defense {name!r}: choose from {', '.join(_FACTORIES)}") from None
    defense = factory(ctx)
    if defense.name != name:
        raise ValueError(f"the factory of {name!r} built a defense named {defense.name!r}")
    return defense
