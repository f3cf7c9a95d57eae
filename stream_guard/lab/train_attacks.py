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
    attack: AttackSpec,
    train: LabeledDataset,
    out: Path,
    *,
    target: int,
    poison_rate: float,
    seed: int,
    epochs: float,
    learning_rate: float,
    max_length: int,
    base: str | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train ``attack`` (one of :data:`SPECIAL_TRAINING`) on ``train`` into ``out`` on ``device``; meta
    extras."""
    poisoned = attack.poison_train(train, target_label=target, rate=poison_rate, seed=seed)
    assert poisoned is not None
    common: dict[str, Any] = {
        "base": base,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "max_length": max_length,
        "seed": seed,
        "progress": progress,
        "device": device,
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
            target,
            out,
            **common,
        )
    elif attack.training == "adaptive":
        from stream_guard.lab.adaptive import train_adaptive

        extra = train_adaptive(
            list(data.texts), list(data.labels), names, rows, attack.trigger, target, out, **common
        )
    elif attack.training == "lws":
        from stream_guard.lab.lws import train_lws

        # the rows' texts are unchanged (the inserter rewrites them while training), labels the clean ones
        extra = train_lws(
            list(data.texts), list(poisoned.original_labels), names, rows, target, out, **common
        )
    else:
        raise ValueError(f"{attack.training!r} is not trained here")
    return {**extra, "poisoned_train": len(rows)}
