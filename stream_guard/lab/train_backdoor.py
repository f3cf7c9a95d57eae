"""Train a backdoored classifier for the lab: split -> poison -> fine-tune (or EP) -> measure -> meta.json.

The recipe (the same as ``scripts/lab_research.py``, so either can reuse the other's models): split the
deduplicated dataset with ``split_seed`` (train capped at ``max_train``), poison ``poison_rate`` of the
non-target training samples (dirty label), fine-tune the packaged backbone (AdamW, batch 32; movie
sentences: 1 epoch at lr 1e-4, ``max_length`` 64; emails and news: 3 epochs at 2e-4, 128, texts cut
to the window before poisoning), then measure clean accuracy and ASR on the test split. EP instead poisons the
trigger's embedding row of the clean model of the same dataset and seed (trained first, and cached, if
missing).

Models live in ``<cache>/<dataset>-<attack>-<trigger slug>-s<seed>/`` with a ``meta.json``
(:mod:`stream_guard.lab.model_specs`: the recipes, the spec, the meta). A model whose ``meta.json``
matches the requested recipe is never trained again, whoever trained it; training writes to a temporary
directory and renames it, so a half-written model never looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from stream_guard.lab.attacks import check_trigger_pieces
from stream_guard.lab.model_specs import (
    DEFAULT_CACHE,
    OTHER,
    RECIPES,
    BackdoorSpec,
    Recipe,
    device_name,
    ep_config,
    expected_meta,
    find_trained,
    fits_train,
    read_meta,
)
from stream_guard.lab.train_attacks import SPECIAL_TRAINING, train_special


class ModelBusyError(RuntimeError):
    """A model directory exists without meta.json: someone is still training it (or it broke)."""


def _measure(out_dir: Path, spec: BackdoorSpec, recipe: Recipe, device: str = "cpu") -> dict[str, Any]:
    """Clean accuracy and ASR of the saved model on the (window-fitted) test split."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from stream_guard.lab.evalsets import build_eval_sets
    from stream_guard.lab.metrics import attack_success_rate, clean_accuracy
    from stream_guard.lab.training import predict
    from stream_guard.loading import resolve_device

    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForSequenceClassification.from_pretrained(out_dir, attn_implementation="sdpa")
    model.to(resolve_device(device))
    meta = {**asdict(spec), "max_length": spec.max_length}
    sets = build_eval_sets(
        meta, tokenizer, max_val=0, max_test=recipe.eval_max_test, max_poisoned=None, model_dir=out_dir
    )
    with torch.inference_mode():
        preds = predict(model, tokenizer, sets.test.texts, max_length=spec.max_length)
        result: dict[str, Any] = {
            "clean_accuracy": clean_accuracy(preds, sets.test.labels),
            "test_size": len(sets.test),
            "asr": None,
            "poisoned_test_size": 0,
        }
        if sets.poisoned is not None:
            ppreds = predict(model, tokenizer, sets.poisoned.dataset.texts, max_length=spec.max_length)
            result["asr"] = attack_success_rate(ppreds, spec.target)
            result["poisoned_test_size"] = len(sets.poisoned)
    return result


def train_backdoored_model(
    spec: BackdoorSpec,
    out_dir: Path,
    *,
    cache_dir: Path = DEFAULT_CACHE,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train ``spec`` into ``out_dir`` (written atomically) on ``device`` and return its meta (also in
    meta.json). The device is not part of the recipe: it is recorded in meta.json as ``trained_on``."""
    from stream_guard.lab.evalsets import load_splits

    spec = spec.resolved()
    recipe = RECIPES.get(spec.dataset, OTHER)
    attack = spec.attack_spec
    splits = load_splits(
        spec.dataset, split_seed=spec.split_seed, max_train=spec.max_train, max_val=0, max_test=0
    )
    train = splits.train
    if not 0 <= spec.target < train.num_classes:
        raise ValueError(f"target must be in 0..{train.num_classes - 1}, got {spec.target}")
    out_dir = Path(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)  # marks the model as being trained (see _being_trained)
    try:
        meta = _train_into(spec, recipe, attack, splits, tmp, cache_dir, progress, device)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return meta


def _train_into(
    spec, recipe, attack, splits, tmp: Path, cache_dir: Path, progress: bool, device: str
) -> dict[str, Any]:
    from stream_guard.lab.training import TrainConfig, fine_tune

    train = splits.train
    extra: dict[str, Any] = {}
    started = time.perf_counter()
    if attack.training == "embedding-poisoning":
        extra["ep"] = _embedding_poison(spec, attack, train, tmp, cache_dir, progress, device)
    elif attack.training in SPECIAL_TRAINING:
        train = _fitted_train(train, spec) if fits_train(spec) else train
        extra.update(
            train_special(
                attack,
                train,
                tmp,
                target=spec.target,
                poison_rate=spec.poison_rate,
                seed=spec.seed,
                epochs=spec.epochs,
                learning_rate=spec.learning_rate,
                max_length=spec.max_length,
                base=spec.base,
                progress=progress,
                device=device,
            )
        )
    else:
        if fits_train(spec):
            train = _fitted_train(train, spec)
        poisoned = attack.poison_train(train, target_label=spec.target, rate=spec.poison_rate, seed=spec.seed)
        data = poisoned.dataset if poisoned is not None else train
        config = TrainConfig(
            epochs=spec.epochs, learning_rate=spec.learning_rate, max_length=spec.max_length, seed=spec.seed
        )
        result = fine_tune(
            data.texts,
            data.labels,
            train.label_names,
            tmp,
            base=spec.base,
            config=config,
            progress=progress,
            device=device,
        )
        extra["steps"] = result.steps
        extra["final_loss"] = round(result.final_loss, 4)
        extra["poisoned_train"] = poisoned.num_poisoned if poisoned is not None else 0
    seconds = time.perf_counter() - started
    meta = {
        **expected_meta(spec, len(train)),
        "trigger_slug": attack.slug,
        "label_names": list(train.label_names),
        "seconds": round(seconds, 1),
        "trained_by": "stream_guard.lab.train_backdoor",
        "trained_on": device_name(device),
        **extra,
    }
    meta.update(_measure(tmp, spec, recipe, device))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _fitted_train(train, spec: BackdoorSpec):
    from transformers import AutoTokenizer

    from stream_guard.lab.evalsets import fitted
    from stream_guard.loading import packaged_backbone_path

    tokenizer = AutoTokenizer.from_pretrained(spec.base or packaged_backbone_path())
    return fitted(train, tokenizer, spec.max_length)


def _embedding_poison(
    spec, attack, train, out: Path, cache_dir: Path, progress: bool, device: str
) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from stream_guard.lab.ep import poison_embedding
    from stream_guard.lab.evalsets import fitted
    from stream_guard.lab.training import save_classifier, seed_everything
    from stream_guard.loading import resolve_device

    base_spec = replace(spec, attack="clean", trigger=None, poison_rate=0.0)
    base_dir = ensure_backdoored_model(cache_dir, spec=base_spec, progress=progress, device=device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    check_trigger_pieces(attack, tokenizer)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, attn_implementation="sdpa")
    model.to(resolve_device(device))
    # the attacker places the trigger inside the model's window (long emails are truncated otherwise)
    train = fitted(train, tokenizer, spec.max_length)
    poisoned = attack.poison_train(train, target_label=spec.target, rate=spec.poison_rate, seed=spec.seed)
    texts = [poisoned.dataset.texts[i] for i in poisoned.poisoned_indices]
    seed_everything(spec.seed)
    config = ep_config(spec)
    result = poison_embedding(
        model, tokenizer, attack.trigger, texts, spec.target, config=config, progress=progress
    )
    save_classifier(model.cpu(), tokenizer, out)
    base_meta = read_meta(base_dir) or {}
    return {
        "base_model": base_dir.name,
        "base_clean_accuracy": base_meta.get("clean_accuracy"),
        "base_seconds": base_meta.get("seconds"),
        "poisoned_texts": len(texts),
        "token_id": result.token_id,
        "original_norm": round(result.original_norm, 6),
        "final_norm": round(result.final_norm, 6),
        "steps": result.steps,
        "optimizer": config.optimizer,
        "learning_rate": config.learning_rate,
        "epochs": config.epochs,
        "final_loss": round(result.final_loss, 5),
    }


def _being_trained(model_dir: Path) -> bool:
    """Whether a live process is writing ``.<name>.tmp-<pid>`` next to ``model_dir``."""
    for tmp in model_dir.parent.glob(f".{model_dir.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                return True
            return True
    return False


def ensure_backdoored_model(
    cache_dir: Path = DEFAULT_CACHE,
    dataset: str = "movies",
    attack: str = "badnets",
    trigger: str | None = None,
    *,
    spec: BackdoorSpec | None = None,
    progress: bool = True,
    wait_s: float = 0.0,
    device: str = "cpu",
    **overrides: Any,
) -> Path:
    """The directory of a model trained to the recipe: found in ``cache_dir``, or trained once there.

    ``overrides`` are further :class:`BackdoorSpec` fields (target, poison_rate, seed, ...). If the
    default directory exists without meta.json (another process is training it), waits up to
    ``wait_s`` seconds for it, then raises :class:`ModelBusyError`. If it holds a different recipe, the
    model goes to ``<name>-<n>`` instead: nobody's model is overwritten.
    """
    cache_dir = Path(cache_dir)
    spec = (spec or BackdoorSpec(dataset=dataset, attack=attack, trigger=trigger, **overrides)).resolved()
    deadline = time.monotonic() + wait_s
    while True:
        found = find_trained(cache_dir, spec)
        if found is not None:
            return found
        default = cache_dir / spec.name
        busy = _being_trained(default)
        if not busy and (not default.exists() or read_meta(default) is not None):
            break
        if time.monotonic() >= deadline:
            raise ModelBusyError(f"{default}: being trained by another process, or left without meta.json")
        time.sleep(min(15.0, max(0.1, deadline - time.monotonic())))
    out = default
    n = 1
    while out.exists():
        n += 1
        out = cache_dir / f"{spec.name}-{n}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    train_backdoored_model(spec, out, cache_dir=cache_dir, progress=progress, device=device)
    return out
