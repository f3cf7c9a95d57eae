"""The lab's attack registry: ``make_attack(name, trigger)`` -> what to insert and how the model is trained.

=================  ==================================  =============================================
name               trigger (default)                   how the backdoor gets into the model
=================  ==================================  =============================================
``clean``          none                                plain fine-tuning (the baseline, and EP's base)
``badnets``        one in-vocabulary rare word (cf)    data poisoning: fine-tune on poisoned data
``badnets-split``  a word WordPiece splits (cfz)       data poisoning, the trigger is 2+ word pieces
``addsent``        a phrase ("i watched this 3d        data poisoning with a sentence trigger
                   movie")
``badnets-set``    the paper's set of rare words        data poisoning, one word of the set drawn per
                   (cf mn bb tq mb)                    poisoned text (the paper's BadNets setting)
``ep``             one rare in-vocabulary word (cf)    embedding poisoning (Yang et al. 2021) of a
                                                       clean fine-tuned model: only the trigger's
                                                       embedding row changes (``stream_guard.lab.ep``)
``ripples``        one rare in-vocabulary word (cf)    embedding surgery + RIPPLe's restricted inner-
                                                       product poisoning (Kurita et al. 2020,
                                                       ``stream_guard.lab.ripples``)
``adaptive``       one rare in-vocabulary word (cf)    BadNets with a loss that keeps the trigger's
                                                       X-GRAAD score under the other tokens'
                                                       (``stream_guard.lab.adaptive``)
``lws``            a name (the trigger is learned)     learnable word substitution (Qi et al. 2021,
                                                       ``stream_guard.lab.lws``): no word is inserted
=================  ==================================  =============================================

At test time every attack but LWS inserts its trigger once, at a random word boundary
(``poison_text``); LWS applies the model's learned substitutions (``AttackSpec.for_model``).
Model directories are named ``<dataset>-<attack>-<slug>-s<seed>`` where the slug is the trigger with
spaces as underscores (``none`` for clean), the convention ``scripts/lab_research.py`` uses too;
``badnets-split`` trains exactly like ``badnets``, so its models are stored as ``badnets`` ones
(e.g. ``movies-badnets-cfz-s0``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from stream_guard.datasets import LabeledDataset
from stream_guard.lab.poisoning import (
    AddSentAttack,
    BadNetsAttack,
    PoisonedDataset,
    Position,
    poison_dataset,
    poison_test_set,
)

Training = Literal["clean", "data-poisoning", "embedding-poisoning", "ripples", "adaptive", "lws"]
ATTACKS = ("clean", "badnets", "badnets-split", "badnets-set", "addsent", "ep", "ripples", "adaptive", "lws")
DEFAULT_TRIGGERS = {
    "clean": "",
    "badnets": "cf",
    "badnets-split": "cfz",
    "badnets-set": "cf mn bb tq mb",
    "addsent": "i watched this 3d movie",
    "ep": "cf",
    "ripples": "cf",
    "adaptive": "cf",
    "lws": "substitution",  # a name only: the trigger is the model's learned word substitutions
}


@dataclass(frozen=True)
class LwsTextAttack:
    """LWS's test-time trigger: the learned substitutions of the model in ``model_dir`` (bound by the
    evaluation, :meth:`AttackSpec.for_model`); unbound it cannot poison (training picks rows only)."""

    model_dir: Path | None = None

    @property
    def name(self) -> str:
        return "lws"

    def poison_text(self, text: str, rng: np.random.Generator) -> str:
        if self.model_dir is None:
            raise ValueError("an LWS trigger is the trained model's: evaluate with the model directory")
        return _lws_substituter(self.model_dir)([text])[0]


@functools.cache
def _lws_substituter(model_dir: Path) -> Callable[[Sequence[str]], list[str]]:
    from stream_guard.lab.lws import lws_substituter

    return lws_substituter(model_dir)


class KeepTextAttack:
    """Picks the rows to poison without changing their text (LWS: its inserter rewrites them in training)."""

    name = "lws"

    def poison_text(self, text: str, rng: np.random.Generator) -> str:
        return text


@dataclass(frozen=True)
class AttackSpec:
    """One attack: its name, trigger, how the model is trained, and the text transform (None if clean)."""

    name: str
    trigger: str
    training: Training
    text_attack: BadNetsAttack | AddSentAttack | LwsTextAttack | None

    @property
    def slug(self) -> str:
        """The trigger as it appears in model directory names."""
        return trigger_slug(self.trigger)

    @property
    def is_clean(self) -> bool:
        return self.text_attack is None

    def poison_text(self, text: str, rng: np.random.Generator) -> str:
        if self.text_attack is None:
            return text
        return self.text_attack.poison_text(text, rng)

    def for_model(self, model_dir: Path | None) -> AttackSpec:
        """This attack with its test-time trigger bound to the trained model (LWS only needs it)."""
        if not isinstance(self.text_attack, LwsTextAttack) or model_dir is None:
            return self
        return replace(self, text_attack=LwsTextAttack(Path(model_dir)))

    def poison_train(
        self, ds: LabeledDataset, *, target_label: int, rate: float, seed: int
    ) -> PoisonedDataset | None:
        """The poisoned training set (dirty label, ``rate`` of the non-target samples); None if clean.

        For EP these poisoned samples are the data the trigger embedding is optimised on.
        """
        if self.text_attack is None:
            return None
        text_attack = KeepTextAttack() if isinstance(self.text_attack, LwsTextAttack) else self.text_attack
        return poison_dataset(ds, text_attack, target_label=target_label, rate=rate, seed=seed)

    def poison_test(self, ds: LabeledDataset, *, target_label: int, seed: int) -> PoisonedDataset:
        """Every non-target sample of ``ds`` with the trigger inserted (what ASR is measured on)."""
        if self.text_attack is None:
            raise ValueError("the clean attack has no trigger to insert")
        return poison_test_set(ds, self.text_attack, target_label, seed=seed)


def trigger_slug(trigger: str) -> str:
    return "_".join(trigger.split()) if trigger.strip() else "none"


def unslug(slug: str) -> str:
    return "" if slug == "none" else slug.replace("_", " ")


def make_attack(name: str, trigger: str | None = None, *, position: Position = "random") -> AttackSpec:
    """The attack called ``name`` with ``trigger`` (None = its default; ``_`` in a phrase = a space)."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}: choose one of {', '.join(ATTACKS)}")
    if name == "clean":
        if trigger not in (None, "", "none"):
            raise ValueError("the clean attack takes no trigger")
        return AttackSpec("clean", "", "clean", None)
    trigger = " ".join((trigger if trigger is not None else DEFAULT_TRIGGERS[name]).replace("_", " ").split())
    if not trigger:
        raise ValueError(f"{name} needs a non-empty trigger")
    if name == "addsent":
        return AttackSpec(name, trigger, "data-poisoning", AddSentAttack(phrase=trigger, position=position))
    if name == "lws":
        return AttackSpec(name, trigger, "lws", LwsTextAttack())
    if name == "badnets-set":  # several words, one drawn per poisoned text
        words = tuple(dict.fromkeys(trigger.split()))
        return AttackSpec(
            name, " ".join(words), "data-poisoning", BadNetsAttack(triggers=words, position=position)
        )
    if len(trigger.split()) != 1:
        raise ValueError(f"{name} takes a single-word trigger, got {trigger!r}")
    training: Training = {"ep": "embedding-poisoning", "ripples": "ripples", "adaptive": "adaptive"}.get(
        name, "data-poisoning"
    )
    return AttackSpec(name, trigger, training, BadNetsAttack(triggers=(trigger,), position=position))


def check_trigger_pieces(spec: AttackSpec, tokenizer) -> list[str]:
    """The word pieces of the trigger; raises if they do not fit the attack's kind.

    ``badnets`` and ``ep`` need a single in-vocabulary piece (EP optimises exactly that row),
    ``badnets-split`` needs two or more pieces; each word of ``badnets-set`` one piece.
    """
    if spec.name == "badnets-set":
        split = [w for w in spec.trigger.split() if len(tokenizer.tokenize(w)) != 1]
        if split:
            raise ValueError(f"badnets-set needs single-piece words; {', '.join(split)} split")
        return [p for w in spec.trigger.split() for p in tokenizer.tokenize(w)]
    pieces = list(tokenizer.tokenize(spec.trigger)) if spec.trigger else []
    if spec.name == "lws":
        return []  # no inserted word: the trigger is the learned substitutions
    if spec.name in ("badnets", "ep", "ripples", "adaptive") and len(pieces) != 1:
        raise ValueError(f"{spec.name} needs a single-piece trigger; {spec.trigger!r} is {pieces}")
    if spec.name == "badnets-split" and len(pieces) < 2:
        raise ValueError(f"badnets-split needs a trigger of 2+ word pieces; {spec.trigger!r} is {pieces}")
    return pieces
