"""The three ways of scoring the same texts that the benchmark compares.

1. `PlainClassifier`: forward only, no attentions, the fastest attention implementation the model has
   (sdpa), under `torch.inference_mode` — the floor any defense is measured against.
2. `batched_scorer`: X-GRAAD as stream-guard runs it — length-bucketed batches within the token budget,
   one forward with attentions and one backward per batch (`Defender.score`).
3. `per_text_scorer`: X-GRAAD the way the authors' reference code runs it — one text at a time, a
   forward with `output_attentions=True` (eager attention) and a backward per text. Tokenization and
   the per-token math are our vectorized code, so the peer is no slower than it has to be.

Every mode takes raw texts, so tokenization is part of each measurement.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from stream_guard.attribution import attribute
from stream_guard.defender import Defender
from stream_guard.encoding import TokenTables, encode_texts, length_buckets, pad_batch
from stream_guard.loading import LoadedClassifier
from stream_guard.settings import DefenderSettings

Scorer = Callable[[Sequence[str]], object]
AUTOCAST_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def fastest_attention_copy(model: PreTrainedModel) -> tuple[PreTrainedModel, str]:
    """A copy of `model` (same weights) switched to sdpa attention where the architecture has it."""
    fast = copy.deepcopy(model)
    try:
        fast.set_attn_implementation("sdpa")
    except (ValueError, ImportError, AttributeError):
        return fast, str(getattr(fast.config, "_attn_implementation", "eager"))
    return fast, "sdpa"


@dataclass
class PlainClassifier:
    """Forward-only classification of raw texts in length-bucketed batches: (N,) predicted labels."""

    model: PreTrainedModel
    classifier: LoadedClassifier
    attention: str
    batch_size: int
    max_batch_tokens: int | None
    autocast: str = "none"

    @classmethod
    def of(
        cls,
        classifier: LoadedClassifier,
        settings: DefenderSettings,
        fast: tuple[PreTrainedModel, str] | None = None,
    ) -> PlainClassifier:
        """Batching as in `settings`; `fast` reuses a `fastest_attention_copy` already made."""
        model, attention = fast or fastest_attention_copy(classifier.model)
        return cls(
            model, classifier, attention, settings.batch_size, settings.max_batch_tokens, settings.autocast
        )

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        tokenizer = self.classifier.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = tokenizer(list(texts), truncation=True, max_length=self.classifier.max_length)["input_ids"]
        labels = torch.empty(len(ids), dtype=torch.long)
        device = self.classifier.device
        dtype = AUTOCAST_DTYPES[self.autocast]
        for batch in length_buckets(
            [len(i) for i in ids], batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens
        ):
            width = max(len(ids[i]) for i in batch)
            input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                input_ids[row, : len(ids[index])] = ids[index]
                mask[row, : len(ids[index])] = 1
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                logits = self.model(
                    input_ids=torch.from_numpy(input_ids).to(device),
                    attention_mask=torch.from_numpy(mask).to(device),
                ).logits
            labels[batch] = logits.argmax(dim=-1).cpu()
        return labels


def batched_scorer(classifier: LoadedClassifier, settings: DefenderSettings) -> Scorer:
    """X-GRAAD, batched: `Defender.score` with the given batch size and token budget."""
    return Defender(classifier, settings).score


def per_text_scorer(classifier: LoadedClassifier, settings: DefenderSettings) -> Scorer:
    """X-GRAAD the reference code's way: per text, a forward with `output_attentions` and a backward.

    Returns per text the (C,) probabilities and the (n,) attention, gradient and score arrays, as the
    batched mode does; tokenization, candidates and Eqs. 5-8 are the same vectorized code.
    """
    tables = TokenTables.build(classifier.tokenizer)
    tokenizer = classifier.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dtype = AUTOCAST_DTYPES[settings.autocast]

    def score(texts: Sequence[str]) -> list[tuple[np.ndarray, ...]]:
        out = []
        for text in texts:
            (encoded,) = encode_texts(tokenizer, [text], classifier.max_length)
            input_ids, mask = pad_batch([encoded], pad_id, classifier.device)
            candidates = tables.candidates(input_ids, exclude_stopwords=settings.exclude_stopwords)
            result = attribute(
                classifier.model,
                input_ids,
                mask,
                candidates.to(classifier.device),
                autocast_dtype=dtype,
                stream_attention=False,
            )
            out.append(
                (
                    torch.softmax(result.logits, dim=-1)[0].cpu().numpy(),
                    result.attention[0].cpu().numpy(),
                    result.gradient[0].cpu().numpy(),
                    result.score[0].cpu().numpy(),
                    float(result.anomaly[0]),
                )
            )
        return out

    return score
