"""Training for the attacks that are more than fine-tuning on poisoned data: RIPPLES, the adaptive
attack and LWS (:mod:`stream_guard.lab.train_backdoor` dispatches here).

Each takes the same poisoned rows as BadNets would (dirty label, ``poison_rate`` of the non-target
training texts, seeded), the recipe's epochs, learning rate and window, and its own settings at their
defaults; the settings are named by a recipe string in ``meta.json`` (``attack_recipe``), so a model
trained with other settings is another model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream_guard.datasets import LabeledDataset
    from stream_guard.lab.attacks import AttackSpec
    from stream_guard.lab.train_backdoor import BackdoorSpec

__all__ = ["SPECIAL_TRAINING", "attack_recipe", "train_special"]

SPECIAL_TRAINING = ("ripples", "adaptive", "lws")


def attack_recipe(training: str) -> str | None:
    """The recipe string of the attack's own settings (None for the attacks without any)."""
    if training == "ripples":
        from stream_guard.lab.ripples import RipplesConfig

        return RipplesConfig().recipe
    if training == "adaptive":
        from stream_guard.lab.adaptive import AdaptiveConfig

        return AdaptiveConfig().recipe
    if training == "lws":
        from stream_guard.lab.lws import LwsConfig

        return LwsConfig().recipe
    return None


def train_special(
    spec: BackdoorSpec, attack: AttackSpec, train: LabeledDataset, out: Path, *, progress: bool
) -> dict[str, Any]:
    """Train ``spec`` (one of :data:`SPECIAL_TRAINING`) on ``train`` into ``out``; meta extras."""
    poisoned = attack.poison_train(train, target_label=spec.target, rate=spec.poison_rate, seed=spec.seed)
    assert poisoned is not None
    common: dict[str, Any] = {
        "base": spec.base,
        "epochs": spec.epochs,
        "learning_rate": spec.learning_rate,
        "max_length": spec.max_length,
        "seed": spec.seed,
        "progress": progress,
    }
    data, rows = poisoned.dataset, list(poisoned.poisoned_indices)
    names = list(train.label_names)
    if attack.training == "ripples":
        from stream_guard.lab.ripples import train_ripples

        extra = train_ripples(
            list(poisoned.original_texts),
            list(poisoned.original_labels),
            names,
            list(data.texts),
            rows,
            attack.trigger.split(),
            spec.target,
            out,
            **common,
        )
    elif attack.training == "adaptive":
        from stream_guard.lab.adaptive import train_adaptive

        extra = train_adaptive(
            list(data.texts), list(data.labels), names, rows, attack.trigger, spec.target, out, **common
        )
    elif attack.training == "lws":
        from stream_guard.lab.lws import train_lws

        # the rows' texts are unchanged (the inserter rewrites them while training), labels the clean ones
        extra = train_lws(
            list(data.texts), list(poisoned.original_labels), names, rows, spec.target, out, **common
        )
    else:
        raise ValueError(f"{attack.training!r} is not trained here")
    return {**extra, "poisoned_train": len(rows)}
