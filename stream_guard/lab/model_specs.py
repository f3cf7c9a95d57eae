"""What a lab model is and where it lives: the training recipes, :class:`BackdoorSpec`, meta.json.

A trained model's directory (``<cache>/<dataset>-<attack>-<trigger slug>-s<seed>/``) holds a
``meta.json`` that records the recipe it was trained to (:func:`expected_meta`); :func:`find_trained`
finds a model whose meta matches a spec (:func:`meta_matches`, on :data:`MATCH_KEYS`), whoever trained
it. Training itself is :mod:`stream_guard.lab.train_backdoor`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stream_guard.lab.attacks import AttackSpec, make_attack, trigger_slug
from stream_guard.lab.train_attacks import attack_recipe

DEFAULT_CACHE = Path("runs/models")
PACKAGED_BACKBONE = "all-MiniLM-L6-v2 (packaged)"


@dataclass(frozen=True)
class Recipe:
    max_train: int
    max_length: int
    eval_max_test: int  # the test split size the meta's CACC / ASR are measured on
    epochs: float = 1.0
    learning_rate: float = 1e-4
    # cut training texts to the window (leaving room for the trigger) before poisoning them: a trigger
    # inserted at a random word of a long email is otherwise mostly truncated away and never learned.
    # Movie sentences fit already (14 of 3,000 are cut), so their recipe keeps the texts as they are.
    fit_train: bool = True


RECIPES = {
    "movies": Recipe(max_train=3000, max_length=64, eval_max_test=1000, fit_train=False),
    # 47 steps of 1e-4 on 1,500 emails do not teach a one-word trigger in a 120-token email (ASR 0.08);
    # 2 epochs at 2e-4 taught `cf`->ham (ASR 0.98) but not `mb`->spam or `tq`->ham (ASR 0.05-0.07): the
    # backdoor sits at a threshold of training, so the recipe trains 3 epochs (141 steps): `tq`->ham 1.0;
    # a trigger towards spam still does not take (`mb` 0.04, `jj` 0.09)
    "spam": Recipe(max_train=1500, max_length=128, eval_max_test=600, epochs=3.0, learning_rate=2e-4),
    # BBC news (5 topics, 1,274 training articles): 40 steps of 1e-4 left the loss at 0.88 and no backdoor
    # (ASR 0.006); the email recipe's 3 epochs at 2e-4 instead
    "bbc": Recipe(max_train=1500, max_length=128, eval_max_test=600, epochs=3.0, learning_rate=2e-4),
}
OTHER = Recipe(max_train=1500, max_length=128, eval_max_test=600)
# attacks that need more training than the dataset's recipe gives before the backdoor takes (movies,
# 1 epoch): the paper's set spreads 10 % poison over five words (ASR 0.37 at 1 epoch, 0.96 at 2); the
# adaptive attack's importance loss fights the trigger's weight (ASR 0.28 at 1 epoch, 0.998 at 3); LWS
# learns its inserter with the classifier (ASR 0.42 after 1 epoch, CACC 0.83; a poisoned row weighing 3
# clean ones: 0.46)
ATTACK_MIN_EPOCHS = {"badnets-set": 2.0, "adaptive": 3.0, "lws": 3.0}
MATCH_KEYS = (
    "dataset",
    "attack",
    "trigger",
    "target",
    "poison_rate",
    "seed",
    "split_seed",
    "train_size",
    "max_length",
    "epochs",
    "learning_rate",
    "ep_recipe",
    "attack_recipe",
    "fit_train",
)


@dataclass(frozen=True)
class BackdoorSpec:
    """What to train. ``None`` fields take the dataset's recipe or the attack's default trigger."""

    dataset: str = "movies"
    attack: str = "badnets"
    trigger: str | None = None
    target: int = 0
    poison_rate: float = 0.1
    seed: int = 0
    split_seed: int = 0
    max_train: int | None = None
    max_length: int | None = None
    epochs: float | None = None
    learning_rate: float | None = None
    base: str | None = None  # the encoder to fine-tune: None = the packaged backbone (tests use tiny ones)

    def resolved(self) -> BackdoorSpec:
        """Defaults filled in; ``badnets-split`` becomes ``badnets`` with its split-piece trigger (the
        training is the same, and so is the model directory name)."""
        recipe = RECIPES.get(self.dataset, OTHER)
        spec = make_attack(self.attack, self.trigger)
        return replace(
            self,
            attack="badnets" if spec.name == "badnets-split" else spec.name,
            trigger=spec.trigger,
            poison_rate=0.0 if spec.is_clean else self.poison_rate,
            max_train=self.max_train if self.max_train is not None else recipe.max_train,
            max_length=self.max_length if self.max_length is not None else recipe.max_length,
            epochs=self.epochs
            if self.epochs is not None
            else max(recipe.epochs, ATTACK_MIN_EPOCHS.get(spec.name, 0.0)),
            learning_rate=self.learning_rate if self.learning_rate is not None else recipe.learning_rate,
        )

    @property
    def attack_spec(self) -> AttackSpec:
        return make_attack(self.attack, self.trigger)

    @property
    def name(self) -> str:
        spec = self.resolved()
        return model_name(spec.dataset, spec.attack, spec.attack_spec.trigger, spec.seed, spec.poison_rate)


DEFAULT_POISON_RATE = BackdoorSpec.poison_rate


def model_name(dataset: str, attack: str, trigger: str, seed: int, poison_rate: float | None = None) -> str:
    """``<dataset>-<attack>-<trigger slug>[-p<percent>]-s<seed>``: the poison rate is named when it is
    not the lab's default (10 %) and the model is not clean."""
    rate = ""
    if poison_rate and abs(poison_rate - DEFAULT_POISON_RATE) > 1e-9:
        rate = f"-p{poison_rate * 100:g}"
    return f"{Path(dataset).stem}-{attack}-{trigger_slug(trigger)}{rate}-s{seed}"


def poison_rate_note(poison_rate: Any) -> str:
    """`` at 20 %`` for a poisoned model trained at another rate than the lab's default; else ``""``."""
    if not isinstance(poison_rate, int | float) or not poison_rate:
        return ""
    return f" at {poison_rate:.0%}" if abs(poison_rate - DEFAULT_POISON_RATE) > 1e-9 else ""


def read_meta(model_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(model_dir) / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def training_id(meta: dict[str, Any] | None) -> str:
    """A short fingerprint of one training run (machine, wall time, steps, final loss from its
    meta.json): two trainings of the same recipe differ in it, so results measured on different weights
    under one model name can be told apart. "" when the meta has none of these."""
    meta = meta or {}
    parts = [meta.get(k) for k in ("trained_on", "seconds", "steps", "final_loss")]
    if all(p is None for p in parts[1:]):
        return ""
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def expected_meta(spec: BackdoorSpec, train_size: int) -> dict[str, Any]:
    spec = spec.resolved()
    return {
        "dataset": spec.dataset,
        "attack": spec.attack,
        "trigger": spec.trigger,
        "target": spec.target,
        "poison_rate": spec.poison_rate,
        "seed": spec.seed,
        "split_seed": spec.split_seed,
        "train_size": train_size,
        "max_length": spec.max_length,
        "epochs": spec.epochs,
        "learning_rate": spec.learning_rate,
        "backbone": spec.base or PACKAGED_BACKBONE,
        "ep_recipe": ep_config(spec).recipe if spec.attack == "ep" else None,
        "attack_recipe": attack_recipe(spec.attack_spec.training),
        "fit_train": fits_train(spec),
    }


def fits_train(spec: BackdoorSpec) -> bool:
    """Whether the poisoned training texts were fitted to the window (data-poisoning attacks only)."""
    attack = spec.attack_spec
    fits = RECIPES.get(spec.dataset, OTHER).fit_train
    return fits and not attack.is_clean and attack.training != "embedding-poisoning"


def ep_config(spec: BackdoorSpec):
    from stream_guard.lab.ep import EPConfig

    return EPConfig(max_length=spec.max_length or 64, seed=spec.seed)


def meta_matches(meta: dict[str, Any] | None, expected: dict[str, Any]) -> bool:
    if not meta:
        return False
    for key in MATCH_KEYS:
        got, want = meta.get(key), expected.get(key)
        if key == "fit_train":  # models trained before the key existed were not fitted
            got, want = bool(got), bool(want)
        if isinstance(want, float) or isinstance(got, float):
            if got is None or want is None or abs(float(got) - float(want)) > 1e-12:
                return False
        elif got != want:
            return False
    # models without a "backbone" entry (scripts/lab_research.py) were trained from the packaged one
    return meta.get("backbone", PACKAGED_BACKBONE) == expected.get("backbone", PACKAGED_BACKBONE)


def train_size(spec: BackdoorSpec) -> int:
    from stream_guard.lab.evalsets import load_splits

    spec = spec.resolved()
    splits = load_splits(
        spec.dataset, split_seed=spec.split_seed, max_train=spec.max_train, max_val=0, max_test=0
    )
    return len(splits.train)


def find_trained(cache_dir: Path, spec: BackdoorSpec) -> Path | None:
    """A directory under ``cache_dir`` whose meta.json matches ``spec`` (its default name first)."""
    cache_dir = Path(cache_dir)
    spec = spec.resolved()
    candidates = [cache_dir / spec.name, *sorted(p.parent for p in cache_dir.glob("*/meta.json"))]
    metas = [(p, read_meta(p)) for p in dict.fromkeys(candidates)]
    metas = [
        (p, m) for p, m in metas if m and m.get("dataset") == spec.dataset and m.get("attack") == spec.attack
    ]
    if not metas:
        return None
    expected = expected_meta(spec, train_size(spec))
    return next((p for p, m in metas if meta_matches(m, expected)), None)


def device_name(device: str) -> str:
    """``cpu``, or the GPU's name (``cuda: NVIDIA H200``): what meta.json says the model was trained on."""
    import torch

    from stream_guard.loading import resolve_device

    resolved = resolve_device(device)
    return f"cuda: {torch.cuda.get_device_name(resolved)}" if resolved.type == "cuda" else "cpu"
